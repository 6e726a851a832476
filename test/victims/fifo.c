/*
 * fifo: a named FIFO next to RESULTFILE, opened O_RDWR (fd A) and
 * O_WRONLY|O_NONBLOCK (fd B), holds 10,000 unread bytes. After restore both fds
 * are that FIFO (the inode of its path), flags are unchanged, the data reads
 * back intact through A, and bytes written through B come out of A.
 */
#include <sys/ioctl.h>
#include "victim.h"

#define DATA 10000

static const char *path;
static int a, b, a_flags, b_flags;
static unsigned char data[DATA + 8];

static void tick(void)
{
	int queued = -1;
	CHECK(ioctl(a, FIONREAD, &queued) == 0 && queued == DATA, "FIONREAD is %d, expected %d (%s)", queued, DATA,
	      err());
}

int main(int argc, char **argv)
{
	static unsigned char buf[DATA];
	victim_init(argc, argv);
	path = victim_file("fifo");
	SETUP(mkfifo(path, 0600) == 0);
	a = open(path, O_RDWR);
	SETUP(a >= 0);
	b = open(path, O_WRONLY | O_NONBLOCK);
	SETUP(b >= 0);
	a_flags = fcntl(a, F_GETFL);
	b_flags = fcntl(b, F_GETFL);
	fill_pattern(data, sizeof data, 10);
	SETUP(write(a, data, DATA) == DATA);
	victim_ready();

	victim_wait(tick);

	tick();
	struct stat named, sa, sb;
	char link[PATH_MAX];
	CHECK(stat(path, &named) == 0 && S_ISFIFO(named.st_mode), "%s is no longer a FIFO", path);
	CHECK(fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_ino == named.st_ino && sb.st_ino == named.st_ino,
	      "fds are inodes %lu and %lu, the FIFO is %lu", (unsigned long)sa.st_ino, (unsigned long)sb.st_ino,
	      (unsigned long)named.st_ino);
	CHECK(strcmp(fd_link(a, link, sizeof link), path) == 0, "fd %d links to '%s', expected '%s'", a, link, path);
	CHECK(fcntl(a, F_GETFL) == a_flags && fcntl(b, F_GETFL) == b_flags, "flags are %#o/%#o, expected %#o/%#o",
	      fcntl(a, F_GETFL), fcntl(b, F_GETFL), a_flags, b_flags);
	ssize_t n = read(a, buf, DATA);
	CHECK(n == DATA && memcmp(buf, data, DATA) == 0, "read of the FIFO returned %zd bytes, or they changed (%s)", n,
	      err());
	CHECK(write(b, "fifo!", 5) == 5 && read(a, buf, 16) == 5 && memcmp(buf, "fifo!", 5) == 0,
	      "bytes written through fd %d did not come out of fd %d", b, a);
	victim_finish();
}
