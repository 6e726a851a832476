/*
 * files: regular files opened in different ways: O_RDWR|O_DSYNC at offset 1234,
 * O_WRONLY|O_APPEND after a write, O_RDONLY|O_CLOEXEC at offset 77 and its dup
 * at fd 100 (one open file description, so one offset), and a directory.
 * After restore each fd has its path, inode, status flags (F_GETFL), fd flags
 * (F_GETFD) and offset; the dup still shares the offset, reads continue at the
 * offset, and appends still go to the end.
 */
#include "victim.h"

struct fd_state {
	int fd;
	const char *path;
	int status_flags, fd_flags;
	off_t offset;
	ino_t ino;
};

static struct fd_state fds[5];
static const char *a_path, *log_path;

static void record(struct fd_state *s, int fd, const char *path)
{
	struct stat st;
	s->fd = fd;
	s->path = path;
	s->status_flags = fcntl(fd, F_GETFL);
	s->fd_flags = fcntl(fd, F_GETFD);
	s->offset = lseek(fd, 0, SEEK_CUR);
	SETUP(fstat(fd, &st) == 0);
	s->ino = st.st_ino;
}

static void check_fd(const struct fd_state *s)
{
	char link[PATH_MAX];
	struct stat st;
	CHECK(strcmp(fd_link(s->fd, link, sizeof link), s->path) == 0, "fd %d links to '%s', expected '%s'", s->fd,
	      link, s->path);
	CHECK(fstat(s->fd, &st) == 0 && st.st_ino == s->ino, "fd %d: inode %lu, expected %lu (%s)", s->fd,
	      (unsigned long)st.st_ino, (unsigned long)s->ino, err());
	int fl = fcntl(s->fd, F_GETFL), fdfl = fcntl(s->fd, F_GETFD);
	CHECK(fl == s->status_flags, "fd %d: F_GETFL is %#o, expected %#o", s->fd, fl, s->status_flags);
	CHECK(fdfl == s->fd_flags, "fd %d: F_GETFD is %d, expected %d", s->fd, fdfl, s->fd_flags);
	off_t off = lseek(s->fd, 0, SEEK_CUR);
	CHECK(off == s->offset, "fd %d: offset is %lld, expected %lld", s->fd, (long long)off, (long long)s->offset);
}

int main(int argc, char **argv)
{
	static unsigned char data[8192], buf[8192];
	victim_init(argc, argv);
	a_path = victim_file("a.dat");
	log_path = victim_file("b.log");
	const char *c_path = victim_file("c.dat");
	fill_pattern(data, sizeof data, 12);
	SETUP(victim_write_text(log_path, "header\n") == 0);
	int fd = open(a_path, O_CREAT | O_EXCL | O_WRONLY, 0644);
	SETUP(fd >= 0 && write(fd, data, sizeof data) == sizeof data && close(fd) == 0);
	fd = open(c_path, O_CREAT | O_EXCL | O_WRONLY, 0644);
	SETUP(fd >= 0 && write(fd, data, 4096) == 4096 && close(fd) == 0);

	int a = open(a_path, O_RDWR | O_DSYNC);
	SETUP(a >= 0 && lseek(a, 1234, SEEK_SET) == 1234);
	int log = open(log_path, O_WRONLY | O_APPEND);
	SETUP(log >= 0 && write(log, "line1\n", 6) == 6);
	int c = open(c_path, O_RDONLY | O_CLOEXEC);
	SETUP(c >= 0 && lseek(c, 77, SEEK_SET) == 77);
	SETUP(dup2(c, 100) == 100);
	int dir = open(victim_dir, O_RDONLY | O_DIRECTORY);
	SETUP(dir >= 0);
	record(&fds[0], a, a_path);
	record(&fds[1], log, log_path);
	record(&fds[2], c, c_path);
	record(&fds[3], 100, c_path);
	record(&fds[4], dir, victim_dir);
	victim_ready();

	victim_wait(NULL);

	for (int i = 0; i < 5; i++)
		check_fd(&fds[i]);
	/* reads continue where they were */
	CHECK(read(a, buf, 100) == 100 && memcmp(buf, data + 1234, 100) == 0, "read at offset 1234 of a.dat is wrong");
	CHECK(read(c, buf, 10) == 10 && memcmp(buf, data + 77, 10) == 0, "read at offset 77 of c.dat is wrong");
	/* fd 100 shares c's file description, so it moved too */
	CHECK(lseek(100, 0, SEEK_CUR) == 87, "fd 100 is at %lld after reading fd %d: the dup lost its shared offset",
	      (long long)lseek(100, 0, SEEK_CUR), c);
	/* writes through the O_RDWR fd land at its offset */
	CHECK(write(a, "XY", 2) == 2, "write to a.dat: %s", err());
	CHECK(pread(a, buf, 4, 1332) == 4 && memcmp(buf, data + 1332, 2) == 0 && memcmp(buf + 2, "XY", 2) == 0,
	      "write to a.dat did not land at offset 1334");
	/* appends still go to the end */
	CHECK(lseek(log, 0, SEEK_SET) == 0 && write(log, "line2\n", 6) == 6, "append to b.log: %s", err());
	char text[64];
	CHECK(read_text(log_path, text, sizeof text) > 0 && strcmp(text, "header\nline1\nline2\n") == 0,
	      "b.log holds '%s' after an O_APPEND write", text);
	victim_finish();
}
