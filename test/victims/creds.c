/*
 * creds: as root, the process takes supplementary groups 1001-1003, real/
 * effective/saved gids 1100/1101/1102 and uids 1000/1001/1002, which also drops
 * its capabilities. After restore all ids, groups, capability sets, securebits,
 * no_new_privs, keepcaps and dumpable are as recorded, and it can still write
 * RESULTFILE (its directory is world-writable).
 */
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include "victim.h"

struct creds {
	uid_t uid[3];
	gid_t gid[3];
	gid_t groups[16];
	int ngroups;
	struct __user_cap_data_struct caps[2];
	int securebits, no_new_privs, keepcaps, dumpable;
	char status_uid[64], status_gid[64], cap_bnd[32], cap_amb[32];
};

static struct creds recorded;

static void read_creds(struct creds *c)
{
	memset(c, 0, sizeof *c);
	struct __user_cap_header_struct head = { _LINUX_CAPABILITY_VERSION_3, 0 };
	if (getresuid(&c->uid[0], &c->uid[1], &c->uid[2]) != 0 || getresgid(&c->gid[0], &c->gid[1], &c->gid[2]) != 0)
		fail("getresuid/getresgid: %s", err());
	c->ngroups = getgroups(16, c->groups);
	CHECK(c->ngroups >= 0, "getgroups: %s", err());
	CHECK(syscall(SYS_capget, &head, c->caps) == 0, "capget: %s", err());
	c->securebits = prctl(PR_GET_SECUREBITS);
	c->no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	c->keepcaps = prctl(PR_GET_KEEPCAPS);
	c->dumpable = prctl(PR_GET_DUMPABLE);
	CHECK(proc_field("/proc/self/status", "Uid", c->status_uid, sizeof c->status_uid) == 0 &&
		      proc_field("/proc/self/status", "Gid", c->status_gid, sizeof c->status_gid) == 0 &&
		      proc_field("/proc/self/status", "CapBnd", c->cap_bnd, sizeof c->cap_bnd) == 0 &&
		      proc_field("/proc/self/status", "CapAmb", c->cap_amb, sizeof c->cap_amb) == 0,
	      "reading /proc/self/status: %s", err());
}

static void compare(void)
{
	struct creds now;
	struct creds *r = &recorded;
	read_creds(&now);
	CHECK(memcmp(now.uid, r->uid, sizeof now.uid) == 0, "uids are %u/%u/%u, expected %u/%u/%u", now.uid[0],
	      now.uid[1], now.uid[2], r->uid[0], r->uid[1], r->uid[2]);
	CHECK(memcmp(now.gid, r->gid, sizeof now.gid) == 0, "gids are %u/%u/%u, expected %u/%u/%u", now.gid[0],
	      now.gid[1], now.gid[2], r->gid[0], r->gid[1], r->gid[2]);
	CHECK(strcmp(now.status_uid, r->status_uid) == 0, "Uid line (real, effective, saved, fs) is '%s', expected '%s'",
	      now.status_uid, r->status_uid);
	CHECK(strcmp(now.status_gid, r->status_gid) == 0, "Gid line (real, effective, saved, fs) is '%s', expected '%s'",
	      now.status_gid, r->status_gid);
	CHECK(now.ngroups == r->ngroups && memcmp(now.groups, r->groups, sizeof now.groups) == 0,
	      "%d supplementary groups (first %u), expected %d (first %u)", now.ngroups, now.groups[0], r->ngroups,
	      r->groups[0]);
	CHECK(memcmp(now.caps, r->caps, sizeof now.caps) == 0,
	      "capabilities effective/permitted/inheritable are %#x/%#x/%#x, expected %#x/%#x/%#x",
	      now.caps[0].effective, now.caps[0].permitted, now.caps[0].inheritable, r->caps[0].effective,
	      r->caps[0].permitted, r->caps[0].inheritable);
	CHECK(strcmp(now.cap_bnd, r->cap_bnd) == 0, "CapBnd is %s, expected %s", now.cap_bnd, r->cap_bnd);
	CHECK(strcmp(now.cap_amb, r->cap_amb) == 0, "CapAmb is %s, expected %s", now.cap_amb, r->cap_amb);
	CHECK(now.securebits == r->securebits && now.no_new_privs == r->no_new_privs && now.keepcaps == r->keepcaps,
	      "securebits/no_new_privs/keepcaps are %d/%d/%d, expected %d/%d/%d", now.securebits, now.no_new_privs,
	      now.keepcaps, r->securebits, r->no_new_privs, r->keepcaps);
	CHECK(now.dumpable == r->dumpable, "dumpable is %d, expected %d", now.dumpable, r->dumpable);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	gid_t groups[] = { 1001, 1002, 1003 };
	SETUP(setgroups(3, groups) == 0);
	SETUP(setresgid(1100, 1101, 1102) == 0);
	SETUP(setresuid(1000, 1001, 1002) == 0);
	read_creds(&recorded);
	SETUP(recorded.caps[0].effective == 0 && recorded.caps[0].permitted == 0);
	victim_ready();

	victim_wait(compare);

	compare();
	victim_finish();
}
