/*
 * epoll: an epoll set watches a pipe with unread data (EPOLLIN), an empty
 * eventfd (EPOLLIN, not ready), an eventfd holding 7 (EPOLLIN|EPOLLOUT) and the
 * write end of an empty pipe (EPOLLOUT), each with its own data.u64. After
 * restore fdinfo lists the same registrations and epoll_wait returns exactly
 * the three ready ones with their events and u64 values.
 */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include "victim.h"

struct watch { int fd; uint32_t events, ready; uint64_t data; };
static struct watch watches[4];
static int ep;
static char recorded_fdinfo[4096];

static void check_ready(void)
{
	struct epoll_event ev[8];
	int n = epoll_wait(ep, ev, 8, 0);
	if (n < 0) {
		fail("epoll_wait: %s", err());
		return;
	}
	int expected = 0;
	for (int w = 0; w < 4; w++)
		expected += watches[w].ready != 0;
	CHECK(n == expected, "epoll_wait returned %d events, expected %d", n, expected);
	for (int i = 0; i < n; i++) {
		struct watch *match = NULL;
		for (int w = 0; w < 4; w++)
			if (watches[w].data == ev[i].data.u64)
				match = &watches[w];
		if (!match) {
			fail("epoll_wait returned unknown data %#llx", (unsigned long long)ev[i].data.u64);
			continue;
		}
		CHECK(ev[i].events == match->ready, "fd %d (data %#llx): events %#x, expected %#x", match->fd,
		      (unsigned long long)match->data, ev[i].events, match->ready);
	}
}

static void watch(int i, int fd, uint32_t events, uint32_t ready, uint64_t data)
{
	watches[i] = (struct watch){ fd, events, ready, data };
	struct epoll_event ev = { .events = events, .data.u64 = data };
	SETUP(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	int with_data[2], empty[2];
	SETUP(pipe(with_data) == 0 && pipe(empty) == 0);
	SETUP(write(with_data[1], "hello", 5) == 5);
	int idle = eventfd(0, EFD_NONBLOCK), seven = eventfd(7, EFD_NONBLOCK);
	SETUP(idle >= 0 && seven >= 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	SETUP(ep >= 0);
	watch(0, with_data[0], EPOLLIN, EPOLLIN, 0x1111000000000001ULL);
	watch(1, idle, EPOLLIN, 0, 0x2222000000000002ULL);
	watch(2, seven, EPOLLIN | EPOLLOUT, EPOLLIN | EPOLLOUT, 0x3333000000000003ULL);
	watch(3, empty[1], EPOLLOUT, EPOLLOUT, 0x4444000000000004ULL);
	epoll_registrations(ep, recorded_fdinfo, sizeof recorded_fdinfo);
	check_ready();
	victim_ready();

	victim_wait(check_ready);

	char now[4096];
	epoll_registrations(ep, now, sizeof now);
	CHECK(strcmp(now, recorded_fdinfo) == 0, "epoll registrations are '%s', expected '%s'", now, recorded_fdinfo);
	check_ready();
	char buf[8];
	CHECK(read(with_data[0], buf, sizeof buf) == 5 && memcmp(buf, "hello", 5) == 0, "the pipe lost its data");
	watches[0].ready = 0;
	check_ready();
	victim_finish();
}
