/*
 * devnull: fds 0, 1 and 2 (given by the launcher) and fd 10 (opened O_RDWR) are
 * /dev/null, fd 11 is /dev/zero. After restore each is still that device
 * (st_rdev) with its flags, /dev/null swallows writes and reads EOF, and
 * /dev/zero reads zeros.
 */
#include <sys/sysmacros.h>
#include "victim.h"

struct dev_fd { int fd; unsigned major, minor; int flags; };
static struct dev_fd fds[] = { { 0, 1, 3, 0 }, { 1, 1, 3, 0 }, { 2, 1, 3, 0 }, { 10, 1, 3, 0 }, { 11, 1, 5, 0 } };
#define NFDS (sizeof fds / sizeof fds[0])

static void check_device(const struct dev_fd *d)
{
	struct stat st;
	if (fstat(d->fd, &st) != 0) {
		fail("fstat(%d): %s", d->fd, err());
		return;
	}
	CHECK(S_ISCHR(st.st_mode) && major(st.st_rdev) == d->major && minor(st.st_rdev) == d->minor,
	      "fd %d is device %u:%u, expected %u:%u", d->fd, major(st.st_rdev), minor(st.st_rdev), d->major, d->minor);
	CHECK(fcntl(d->fd, F_GETFL) == d->flags, "fd %d: F_GETFL is %#o, expected %#o", d->fd, fcntl(d->fd, F_GETFL),
	      d->flags);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	int null = open("/dev/null", O_RDWR);
	SETUP(null >= 0 && dup2(null, 10) == 10 && close(null) == 0);
	int zero = open("/dev/zero", O_RDONLY);
	SETUP(zero >= 0 && dup2(zero, 11) == 11 && close(zero) == 0);
	for (size_t i = 0; i < NFDS; i++) {
		fds[i].flags = fcntl(fds[i].fd, F_GETFL);
		SETUP(fds[i].flags != -1);
	}
	victim_ready();

	victim_wait(NULL);

	for (size_t i = 0; i < NFDS; i++)
		check_device(&fds[i]);
	char buf[64];
	memset(buf, 1, sizeof buf);
	CHECK(write(10, "gone", 4) == 4, "write to /dev/null returned something else than 4: %s", err());
	CHECK(read(10, buf, sizeof buf) == 0, "read from /dev/null did not return EOF: %s", err());
	CHECK(read(11, buf, sizeof buf) == sizeof buf && zero_mismatch(buf, sizeof buf) < 0,
	      "read from /dev/zero did not return zeros: %s", err());
	victim_finish();
}
