/*
 * pipe: a pipe of 256 KiB holds 100,000 bytes nobody has read; the write end
 * is O_NONBLOCK. After restore both ends are one pipe (same inode), the size,
 * flags and FIONREAD are unchanged, the data reads back intact, and bytes
 * written then come out at the other end.
 */
#include <sys/ioctl.h>
#include "victim.h"

#define DATA 100000

static int ends[2];
static int pipe_size, read_flags, write_flags;
static unsigned char data[DATA + 8];

static void tick(void)
{
	int queued = -1;
	CHECK(ioctl(ends[0], FIONREAD, &queued) == 0 && queued == DATA, "FIONREAD is %d, expected %d (%s)", queued, DATA,
	      err());
}

int main(int argc, char **argv)
{
	static unsigned char buf[DATA];
	victim_init(argc, argv);
	SETUP(pipe(ends) == 0);
	SETUP(fcntl(ends[1], F_SETPIPE_SZ, 256 * 1024) >= 0);
	SETUP(fcntl(ends[1], F_SETFL, O_NONBLOCK) == 0);
	pipe_size = fcntl(ends[0], F_GETPIPE_SZ);
	read_flags = fcntl(ends[0], F_GETFL);
	write_flags = fcntl(ends[1], F_GETFL);
	fill_pattern(data, sizeof data, 100);
	SETUP(write(ends[1], data, DATA) == DATA);
	victim_ready();

	victim_wait(tick);

	tick();
	struct stat r, w;
	char link[64], expected[64];
	CHECK(fstat(ends[0], &r) == 0 && fstat(ends[1], &w) == 0 && S_ISFIFO(r.st_mode) && r.st_ino == w.st_ino,
	      "the two ends are not one pipe (inodes %lu and %lu)", (unsigned long)r.st_ino, (unsigned long)w.st_ino);
	snprintf(expected, sizeof expected, "pipe:[%lu]", (unsigned long)r.st_ino);
	CHECK(strcmp(fd_link(ends[0], link, sizeof link), expected) == 0, "read end links to '%s'", link);
	CHECK(fcntl(ends[0], F_GETPIPE_SZ) == pipe_size, "pipe size is %d, expected %d", fcntl(ends[0], F_GETPIPE_SZ),
	      pipe_size);
	CHECK(fcntl(ends[0], F_GETFL) == read_flags && fcntl(ends[1], F_GETFL) == write_flags,
	      "flags are %#o/%#o, expected %#o/%#o", fcntl(ends[0], F_GETFL), fcntl(ends[1], F_GETFL), read_flags,
	      write_flags);
	size_t got = 0;
	while (got < DATA) {
		ssize_t n = read(ends[0], buf + got, DATA - got);
		if (n <= 0) {
			fail("read after %zu of %d bytes returned %zd, %s", got, DATA, n, err());
			break;
		}
		got += n;
	}
	CHECK(got == DATA && memcmp(buf, data, DATA) == 0, "the pipe's data changed");
	CHECK(write(ends[1], "xyz", 3) == 3 && read(ends[0], buf, 16) == 3 && memcmp(buf, "xyz", 3) == 0,
	      "bytes written after restore did not come out of the read end");
	victim_finish();
}
