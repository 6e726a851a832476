/*
 * eventfd_wide: eventfd counters that need all 64 bits. A blocking eventfd
 * holds 0x123456789abcdef0 (past 2^32, which eventfd2() cannot take, and past
 * 2^53, which a double cannot hold) and is also open as fd 40 (a dup: one
 * open file description); a non-blocking one is full (0xfffffffffffffffe).
 * After restore fdinfo shows the exact counts, reading through fd 40 empties
 * the first, and the full one refuses one more with EAGAIN.
 */
#include <poll.h>
#include <sys/eventfd.h>
#include "victim.h"

#define WIDE 0x123456789abcdef0ULL
#define FULL 0xfffffffffffffffeULL
#define DUP_FD 40

static int wide, full;

static unsigned long long fdinfo_count(int fd)
{
	char path[64], value[64];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	if (proc_field(path, "eventfd-count", value, sizeof value) != 0) {
		fail("no eventfd-count in %s: %s", path, err());
		return 0;
	}
	return strtoull(value, NULL, 16);
}

static void tick(void)
{
	CHECK(fdinfo_count(wide) == WIDE, "wide eventfd count is %#llx, expected %#llx", fdinfo_count(wide), WIDE);
	CHECK(fdinfo_count(full) == FULL, "full eventfd count is %#llx, expected %#llx", fdinfo_count(full), FULL);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	wide = eventfd(0, EFD_CLOEXEC);
	SETUP(wide >= 0);
	uint64_t value = WIDE;
	SETUP(write(wide, &value, sizeof value) == sizeof value);
	SETUP(dup2(wide, DUP_FD) == DUP_FD);
	full = eventfd(0, EFD_NONBLOCK);
	SETUP(full >= 0);
	value = FULL;
	SETUP(write(full, &value, sizeof value) == sizeof value);
	tick();
	victim_ready();

	victim_wait(tick);

	tick();
	CHECK(fcntl(wide, F_GETFL) == O_RDWR && fcntl(full, F_GETFL) == (O_RDWR | O_NONBLOCK),
	      "flags are %#o/%#o", fcntl(wide, F_GETFL), fcntl(full, F_GETFL));
	CHECK(fcntl(wide, F_GETFD) == FD_CLOEXEC && fcntl(DUP_FD, F_GETFD) == 0 && fcntl(full, F_GETFD) == 0,
	      "FD_CLOEXEC flags changed");
	value = 0;
	CHECK(read(DUP_FD, &value, sizeof value) == sizeof value && value == WIDE,
	      "read through fd %d gave %#llx, expected %#llx (%s)", DUP_FD, (unsigned long long)value, WIDE, err());
	struct pollfd p = { wide, POLLIN, 0 };
	CHECK(poll(&p, 1, 0) == 0, "fd %d still readable after its dup %d was read: not one eventfd", wide, DUP_FD);
	value = 1;
	CHECK(write(full, &value, sizeof value) == -1 && errno == EAGAIN, "the full eventfd took one more (%s)", err());
	CHECK(read(full, &value, sizeof value) == sizeof value && value == FULL, "full eventfd read %#llx",
	      (unsigned long long)value);
	victim_finish();
}
