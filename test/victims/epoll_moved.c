/*
 * epoll_moved: epoll state that the plain registrations do not show. An
 * eventfd registered as fd X, then dup'ed to Y and closed as X, after which
 * another eventfd took number X and was registered too (fdinfo lists tfd X
 * twice); a one-shot watch that has fired (disarmed); an edge-triggered watch
 * with its event not yet collected; the epoll nested in a second epoll and
 * open twice (a dup). After restore fdinfo lists the same registrations, the
 * moved watch still answers to X and not to Y, the one-shot stays disarmed
 * until re-armed, and the nested epoll reports the inner one readable.
 */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include "victim.h"

#define MOVED 0xaaaa00000000000aULL
#define NEWCOMER 6
#define ONESHOT 3
#define EDGE 4
#define INNER 5

static int ep, outer, ep_dup, moved_fd, newcomer, edge, pipefd[2];
static char recorded[4096];

/* epoll_wait(FD) without waiting must give exactly these data words (events EPOLLIN unless oneshot). */
static void expect_events(int fd, const char *what, int n_expected, const uint64_t *expected)
{
	struct epoll_event ev[8];
	int n = epoll_wait(fd, ev, 8, 0);
	if (n != n_expected) {
		fail("%s: epoll_wait returned %d events (first data %#llx), expected %d (%s)", what, n,
		     n > 0 ? (unsigned long long)ev[0].data.u64 : 0ULL, n_expected, err());
		return;
	}
	for (int i = 0; i < n; i++) {
		int found = 0;
		for (int j = 0; j < n_expected; j++)
			found |= ev[i].data.u64 == expected[j];
		CHECK(found, "%s: unexpected event data %#llx (events %#x)", what, (unsigned long long)ev[i].data.u64,
		      ev[i].events);
	}
}

static void add(int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	SETUP(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	ep = epoll_create1(0);
	SETUP(ep >= 0);
	int x = eventfd(0, EFD_NONBLOCK);
	SETUP(x >= 0);
	add(x, EPOLLIN, MOVED);
	moved_fd = dup(x);
	SETUP(moved_fd >= 0 && close(x) == 0);
	newcomer = eventfd(0, EFD_NONBLOCK);
	SETUP(newcomer == x); /* the lowest free number: X again */
	add(newcomer, EPOLLIN, NEWCOMER);
	SETUP(pipe2(pipefd, O_NONBLOCK) == 0);
	add(pipefd[1], EPOLLOUT | EPOLLONESHOT, ONESHOT);
	uint64_t fired[] = { ONESHOT };
	expect_events(ep, "setup", 1, fired);
	edge = eventfd(1, EFD_NONBLOCK);
	SETUP(edge >= 0);
	add(edge, EPOLLIN | EPOLLET, EDGE);
	outer = epoll_create1(EPOLL_CLOEXEC);
	SETUP(outer >= 0);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = INNER };
	SETUP(epoll_ctl(outer, EPOLL_CTL_ADD, ep, &ev) == 0);
	ep_dup = dup(ep);
	SETUP(ep_dup >= 0);
	epoll_registrations(ep, recorded, sizeof recorded);
	victim_ready();

	victim_wait(NULL);

	char now[4096];
	epoll_registrations(ep, now, sizeof now);
	CHECK(strcmp(now, recorded) == 0, "registrations are '%s', expected '%s'", now, recorded);
	uint64_t inner[] = { INNER }, edge_only[] = { EDGE }, moved[] = { MOVED }, oneshot[] = { ONESHOT };
	expect_events(outer, "outer epoll", 1, inner);
	expect_events(ep_dup, "the edge-triggered event, through the dup", 1, edge_only);
	expect_events(ep, "after the edge-triggered event", 0, NULL);

	uint64_t one = 1;
	CHECK(write(moved_fd, &one, sizeof one) == sizeof one, "write to the moved eventfd: %s", err());
	expect_events(ep, "moved eventfd written", 1, moved);
	CHECK(read(moved_fd, &one, sizeof one) == sizeof one, "read of the moved eventfd: %s", err());
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = 99 };
	CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, moved_fd, &ev) == -1 && errno == ENOENT,
	      "EPOLL_CTL_MOD through fd %d should fail with ENOENT: the watch belongs to fd %d (%s)", moved_fd, newcomer,
	      err());

	ev = (struct epoll_event){ .events = EPOLLOUT | EPOLLONESHOT, .data.u64 = ONESHOT };
	CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, pipefd[1], &ev) == 0, "re-arming the one-shot watch: %s", err());
	expect_events(ep, "one-shot re-armed", 1, oneshot);
	CHECK(fcntl(ep, F_GETFD) == 0 && fcntl(outer, F_GETFD) == FD_CLOEXEC, "FD_CLOEXEC flags changed");
	victim_finish();
}
