/*
 * mm_fields: what the kernel keeps about the address space layout. Run with
 * extra arguments and FERRY_VICTIM_MM=marker-2718 in the environment, and a
 * comm set with PR_SET_NAME. After restore /proc/self/cmdline equals argv,
 * /proc/self/environ is unchanged and holds the variable, /proc/self/exe
 * points to the same binary, /proc/self/auxv is unchanged and its AT_ENTRY is
 * getauxval(AT_ENTRY) (= _start), and the start_code ... env_end fields of
 * /proc/self/stat are unchanged.
 */
#include <elf.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include "victim.h"

#define ENV_VAR "FERRY_VICTIM_MM=marker-2718"
#define COMM "ferry-mm-victim"

extern char _start[];

struct snapshot {
	char cmdline[4096], environ[16384], exe[PATH_MAX], comm[32];
	unsigned char auxv[1024];
	ssize_t cmdline_len, environ_len, auxv_len;
	unsigned long stat_fields[10];
};

static struct snapshot recorded;
static char **args;
static int nargs;

/* start_code end_code start_stack (fields 26-28), start_data ... env_end (45-51) */
static const int stat_numbers[10] = { 26, 27, 28, 45, 46, 47, 48, 49, 50, 51 };

static void read_stat_fields(unsigned long *out)
{
	static char text[4096];
	if (read_text("/proc/self/stat", text, sizeof text) < 0) {
		fail("read /proc/self/stat: %s", err());
		return;
	}
	char *p = strrchr(text, ')'); /* comm may contain spaces */
	int field = 2, k = 0;
	while (p && k < 10) {
		p = strchr(p, ' ');
		if (!p)
			break;
		p++;
		field++;
		if (field == stat_numbers[k])
			out[k++] = strtoul(p, NULL, 10);
	}
	CHECK(k == 10, "/proc/self/stat has too few fields");
}

static void take(struct snapshot *s)
{
	memset(s, 0, sizeof *s);
	s->cmdline_len = read_text("/proc/self/cmdline", s->cmdline, sizeof s->cmdline);
	s->environ_len = read_text("/proc/self/environ", s->environ, sizeof s->environ);
	s->auxv_len = read_text("/proc/self/auxv", (char *)s->auxv, sizeof s->auxv);
	CHECK(s->cmdline_len > 0 && s->environ_len > 0 && s->auxv_len > 0, "reading /proc/self/{cmdline,environ,auxv}: %s",
	      err());
	link_of("/proc/self/exe", s->exe, sizeof s->exe);
	CHECK(prctl(PR_GET_NAME, s->comm) == 0, "PR_GET_NAME: %s", err());
	read_stat_fields(s->stat_fields);
}

static void check_cmdline_is_argv(const struct snapshot *s)
{
	const char *p = s->cmdline;
	for (int i = 0; i < nargs; i++) {
		if (p >= s->cmdline + s->cmdline_len || strcmp(p, args[i]) != 0) {
			fail("/proc/self/cmdline argument %d is '%s', argv has '%s'", i,
			     p < s->cmdline + s->cmdline_len ? p : "(missing)", args[i]);
			return;
		}
		p += strlen(p) + 1;
	}
	CHECK(p == s->cmdline + s->cmdline_len, "/proc/self/cmdline is longer than argv");
}

static int environ_has(const struct snapshot *s, const char *var)
{
	for (const char *p = s->environ; p < s->environ + s->environ_len; p += strlen(p) + 1)
		if (strcmp(p, var) == 0)
			return 1;
	return 0;
}

static unsigned long auxv_entry(const struct snapshot *s, unsigned long type)
{
	const Elf64_auxv_t *a = (const Elf64_auxv_t *)s->auxv;
	for (size_t i = 0; i < s->auxv_len / sizeof *a && a[i].a_type != AT_NULL; i++)
		if (a[i].a_type == type)
			return a[i].a_un.a_val;
	return 0;
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	args = argv;
	nargs = argc;
	SETUP(argc >= 3);
	SETUP(prctl(PR_SET_NAME, COMM) == 0);
	take(&recorded);
	check_cmdline_is_argv(&recorded);
	SETUP(environ_has(&recorded, ENV_VAR));
	SETUP(auxv_entry(&recorded, AT_ENTRY) == (unsigned long)_start);
	victim_ready();

	victim_wait(NULL);

	struct snapshot now;
	take(&now);
	check_cmdline_is_argv(&now);
	CHECK(now.environ_len == recorded.environ_len && memcmp(now.environ, recorded.environ, now.environ_len) == 0,
	      "/proc/self/environ changed (%zd bytes, was %zd)", now.environ_len, recorded.environ_len);
	CHECK(environ_has(&now, ENV_VAR), "/proc/self/environ lacks " ENV_VAR);
	CHECK(strcmp(getenv("FERRY_VICTIM_MM") ? getenv("FERRY_VICTIM_MM") : "", "marker-2718") == 0,
	      "getenv(FERRY_VICTIM_MM) is wrong");
	CHECK(strcmp(now.exe, recorded.exe) == 0, "/proc/self/exe is '%s', expected '%s'", now.exe, recorded.exe);
	CHECK(strcmp(now.comm, COMM) == 0, "comm is '%s', expected '%s'", now.comm, COMM);
	CHECK(now.auxv_len == recorded.auxv_len && memcmp(now.auxv, recorded.auxv, now.auxv_len) == 0,
	      "/proc/self/auxv changed (%zd bytes, was %zd)", now.auxv_len, recorded.auxv_len);
	CHECK(auxv_entry(&now, AT_ENTRY) == getauxval(AT_ENTRY) && getauxval(AT_ENTRY) == (unsigned long)_start,
	      "AT_ENTRY is %#lx in /proc/self/auxv, getauxval says %#lx, _start is %p", auxv_entry(&now, AT_ENTRY),
	      getauxval(AT_ENTRY), (void *)_start);
	for (int k = 0; k < 10; k++)
		CHECK(now.stat_fields[k] == recorded.stat_fields[k], "/proc/self/stat field %d is %#lx, expected %#lx",
		      stat_numbers[k], now.stat_fields[k], recorded.stat_fields[k]);
	victim_finish();
}
