/*
 * fd_objects_tree: a parent and its forked child share a sealable memfd (fd and
 * MAP_SHARED mapping, sealed F_SEAL_SHRINK|F_SEAL_FUTURE_WRITE after the
 * writable mapping was made) and an epoll watching an eventfd that holds 3.
 * After restore, in both processes, the fd and the mapping are one object, the
 * seals hold, and the epoll reports the eventfd. The child checks on the
 * parent's SIGTERM and writes its verdict to RESULTFILE.child; it dies with
 * the parent (PR_SET_PDEATHSIG).
 */
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include "victim.h"

#define SEALS (F_SEAL_SHRINK | F_SEAL_FUTURE_WRITE)

static int fd, ep;
static volatile uint64_t *map;
static char child_result[PATH_MAX + 16];

static void check(const char *who)
{
	uint64_t seen = 0;
	struct stat st;
	struct vma v;
	map[0] = (uint64_t)getpid();
	CHECK(pread(fd, &seen, sizeof seen, 0) == sizeof seen && seen == (uint64_t)getpid(),
	      "%s: the memfd reads %llu, its mapping holds %d", who, (unsigned long long)seen, getpid());
	CHECK(fstat(fd, &st) == 0 && find_vma((void *)map, &v) == 0 && v.inode == st.st_ino,
	      "%s: the mapping and the fd are different objects", who);
	CHECK(fcntl(fd, F_GET_SEALS) == SEALS, "%s: seals %#x, expected %#x", who, fcntl(fd, F_GET_SEALS), SEALS);
	struct epoll_event ev;
	int n = epoll_wait(ep, &ev, 1, 0);
	CHECK(n == 1 && ev.data.u64 == 42, "%s: epoll_wait gave %d events (%s)", who, n, err());
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	snprintf(child_result, sizeof child_result, "%s.child", victim_result);
	fd = memfd_create("tree", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	SETUP(fd >= 0 && ftruncate(fd, VPAGE) == 0);
	map = mmap(NULL, VPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	SETUP(map != MAP_FAILED);
	SETUP(fcntl(fd, F_ADD_SEALS, SEALS) == 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	int efd = eventfd(3, EFD_CLOEXEC);
	SETUP(ep >= 0 && efd >= 0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 42 };
	SETUP(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0);
	pid_t child = fork();
	SETUP(child >= 0);
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a parent killed by a failed test */
		while (!victim_stop)
			victim_nap_ms(1);
		check("child");
		victim_write_text(child_result, failed() ? victim_failure : "PASS");
		_exit(0);
	}
	victim_ready();

	victim_wait(NULL);

	check("parent");
	int status;
	CHECK(kill(child, SIGTERM) == 0 && waitpid(child, &status, 0) == child, "the child is gone: %s", err());
	char verdict[sizeof victim_failure];
	if (read_text(child_result, verdict, sizeof verdict) < 0)
		fail("the child wrote no verdict: %s", err());
	else
		CHECK(strcmp(verdict, "PASS") == 0, "child: %s", verdict);
	victim_finish();
}
