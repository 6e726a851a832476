/*
 * deleted_file: a file is created, written (3 pages + 100 bytes), left open
 * O_RDWR at offset 5000, and unlinked. After restore the fd still reads the
 * content, fstat says nlink 0 and the same size, /proc/self/fd calls it
 * "<path> (deleted)", its offset and flags are kept, the name is still gone
 * from the directory, and writes through the fd work.
 */
#include "victim.h"

#define SIZE (3 * VPAGE + 100)

static unsigned char data[SIZE + 4];
static const char *path;
static int fd, flags;

int main(int argc, char **argv)
{
	static unsigned char buf[SIZE];
	victim_init(argc, argv);
	path = victim_file("ghost.dat");
	fill_pattern(data, sizeof data, 3);
	fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0640);
	SETUP(fd >= 0);
	SETUP(write(fd, data, SIZE) == SIZE);
	SETUP(lseek(fd, 5000, SEEK_SET) == 5000);
	SETUP(unlink(path) == 0);
	flags = fcntl(fd, F_GETFL);
	victim_ready();

	victim_wait(NULL);

	struct stat st;
	char link[PATH_MAX], expected[PATH_MAX + 16];
	snprintf(expected, sizeof expected, "%s (deleted)", path);
	CHECK(strcmp(fd_link(fd, link, sizeof link), expected) == 0, "fd %d links to '%s', expected '%s'", fd, link,
	      expected);
	if (fstat(fd, &st) != 0)
		fail("fstat: %s", err());
	else
		CHECK(st.st_nlink == 0 && st.st_size == SIZE && (st.st_mode & 0777) == 0640,
		      "fstat: nlink %lu size %lld mode %o, expected nlink 0 size %lu mode 640", (unsigned long)st.st_nlink,
		      (long long)st.st_size, st.st_mode & 0777, (unsigned long)SIZE);
	CHECK(lseek(fd, 0, SEEK_CUR) == 5000, "offset is %lld, expected 5000", (long long)lseek(fd, 0, SEEK_CUR));
	CHECK(fcntl(fd, F_GETFL) == flags, "F_GETFL is %#o, expected %#o", fcntl(fd, F_GETFL), flags);
	CHECK(pread(fd, buf, SIZE, 0) == SIZE && memcmp(buf, data, SIZE) == 0, "content of the deleted file changed");
	CHECK(access(path, F_OK) == -1 && errno == ENOENT, "%s exists again in the directory", path);
	CHECK(write(fd, "ZZ", 2) == 2 && pread(fd, buf, 2, 5000) == 2 && memcmp(buf, "ZZ", 2) == 0,
	      "write at offset 5000 of the deleted file did not stick: %s", err());
	victim_finish();
}
