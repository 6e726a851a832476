/*
 * epoll_orphan: an epoll watches an eventfd whose fd was then closed; only a
 * detached process (a grandchild, outside this process's tree) still holds
 * the eventfd, so the watch has no fd here to be re-created through. ferry
 * must refuse the dump and leave the process unharmed: after the failed dump
 * the watch still reports the eventfd, and the victim passes. The grandchild
 * ends once RESULTFILE exists (or after a minute).
 */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include "victim.h"

static int ep;

static void tick(void)
{
	struct epoll_event ev;
	int n = epoll_wait(ep, &ev, 1, 0);
	CHECK(n == 1 && ev.data.u64 == 77, "epoll_wait gave %d events (data %llu), expected the eventfd's (%s)", n,
	      n > 0 ? (unsigned long long)ev.data.u64 : 0ULL, err());
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	ep = epoll_create1(EPOLL_CLOEXEC);
	int efd = eventfd(1, EFD_CLOEXEC);
	SETUP(ep >= 0 && efd >= 0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 77 };
	SETUP(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0);
	pid_t child = fork();
	SETUP(child >= 0);
	if (child == 0) {
		if (fork() != 0)
			_exit(0);
		for (int i = 0; i < 1200 && access(victim_result, F_OK) != 0; i++)
			usleep(50000);
		_exit(0);
	}
	SETUP(waitpid(child, NULL, 0) == child);
	SETUP(close(efd) == 0);
	tick();
	victim_ready();

	victim_wait(tick);

	tick();
	victim_finish();
}
