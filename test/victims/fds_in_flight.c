/*
 * fds_in_flight: file descriptors passed with SCM_RIGHTS that nobody has received yet. A stream
 * socketpair holds "head" (no fds), "P1" carrying a pipe's read end, "F1" carrying a regular file
 * at offset 5, "U1" carrying one end of a third socketpair (with "inside" queued in it) and
 * "tail"; a datagram socketpair holds "plain", "two" carrying the file opened again at offset 2
 * and a dup of the pipe's write end, and "last". The process closed its own copies of the read
 * end, the files and that socket end before the dump: only the queues hold them.
 * After restore the messages come out in order with the same boundaries, each with its fds: the
 * pipe still holds the bytes written before and is still joined to the write end the process
 * kept (the dup shares its description), the files read on from their offsets, the socket end
 * has its queued message and is still joined to the end the process kept.
 */
#include "victim.h"
#include <sys/socket.h>
#include <sys/uio.h>

#define PIPE_TEXT "written into the pipe before the dump"
#define FILE_TEXT "0123456789abcdef"

static int stream[2], dgram[2], inner[2], pipe_w;
static ino_t file_ino;

static void send_fds(int sock, const char *text, const int *fds, int nfds)
{
	char control[CMSG_SPACE(2 * sizeof(int))] = { 0 };
	struct iovec iov = { (void *)text, strlen(text) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds) {
		msg.msg_control = control;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	SETUP(sendmsg(sock, &msg, 0) == (ssize_t)strlen(text));
}

/* Receives at most `max` bytes: they must be `want`, with exactly `nfds` fds (stored in fds). */
static void expect(int sock, size_t max, const char *want, int *fds, int nfds, const char *what)
{
	char buf[64] = { 0 }, control[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov = { buf, max };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control };
	ssize_t n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	CHECK(n == (ssize_t)strlen(want) && memcmp(buf, want, n) == 0, "%s: got %zd bytes '%.*s', expected '%s' (%s)", what, n,
	      n > 0 ? (int)n : 0, buf, want, n < 0 ? err() : "");
	int got = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (int i = 0; i < k; i++, got++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
			if (got < nfds)
				fds[got] = fd;
			else
				close(fd);
		}
	}
	CHECK(got == nfds, "%s: came with %d fds, expected %d", what, got, nfds);
	for (int i = got; i < nfds; i++)
		fds[i] = -1;
}

static void expect_read(int fd, const char *want, const char *what)
{
	char buf[64] = { 0 };
	ssize_t n = read(fd, buf, sizeof buf);
	CHECK(n == (ssize_t)strlen(want) && memcmp(buf, want, n) == 0, "%s: read %zd bytes '%.*s', expected '%s' (%s)", what, n,
	      n > 0 ? (int)n : 0, buf, want, n < 0 ? err() : "");
}

static void check_file(int fd, off_t offset, const char *what)
{
	struct stat st;
	if (fd < 0)
		return;
	CHECK(fstat(fd, &st) == 0 && st.st_ino == file_ino, "%s: inode %lu, expected %lu", what, (unsigned long)st.st_ino,
	      (unsigned long)file_ino);
	CHECK(lseek(fd, 0, SEEK_CUR) == offset, "%s: offset %lld, expected %lld", what, (long long)lseek(fd, 0, SEEK_CUR),
	      (long long)offset);
	expect_read(fd, FILE_TEXT + offset, what);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	int p[2];
	SETUP(socketpair(AF_UNIX, SOCK_STREAM, 0, stream) == 0 && socketpair(AF_UNIX, SOCK_DGRAM, 0, dgram) == 0);
	SETUP(pipe(p) == 0 && write(p[1], PIPE_TEXT, strlen(PIPE_TEXT)) == (ssize_t)strlen(PIPE_TEXT));
	const char *path = victim_file("in-flight.txt");
	int file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600), again = open(path, O_RDONLY);
	SETUP(file >= 0 && again >= 0 && write(file, FILE_TEXT, strlen(FILE_TEXT)) == (ssize_t)strlen(FILE_TEXT));
	SETUP(lseek(file, 5, SEEK_SET) == 5 && lseek(again, 2, SEEK_SET) == 2);
	struct stat st;
	SETUP(fstat(file, &st) == 0);
	file_ino = st.st_ino;
	int write_dup = dup(p[1]);
	SETUP(write_dup >= 0);

	send_fds(stream[0], "head", NULL, 0);
	send_fds(stream[0], "P1", &p[0], 1);
	send_fds(stream[0], "F1", &file, 1);
	SETUP(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, inner) == 0 && send(inner[0], "inside", 6, 0) == 6);
	send_fds(stream[0], "U1", &inner[1], 1);
	close(inner[1]);
	send_fds(stream[0], "tail", NULL, 0);
	send_fds(dgram[0], "plain", NULL, 0);
	int two[2] = { again, write_dup };
	send_fds(dgram[0], "two", two, 2);
	send_fds(dgram[0], "last", NULL, 0);
	close(p[0]);
	close(file);
	close(again);
	close(write_dup);
	pipe_w = p[1];
	victim_ready();

	victim_wait(NULL);
	int got[2];
	/* a short read ends before the segment that carries fds: none come with it */
	expect(stream[1], 4, "head", got, 0, "stream 'head'");
	expect(stream[1], 64, "P1", got, 1, "stream 'P1'");
	int pipe_r = got[0];
	expect(stream[1], 64, "F1", got, 1, "stream 'F1'");
	check_file(got[0], 5, "file sent with 'F1'");
	if (got[0] >= 0)
		close(got[0]);
	expect(stream[1], 64, "U1", got, 1, "stream 'U1'");
	if (got[0] >= 0) {
		int u = got[0];
		expect(u, 64, "inside", got, 0, "socket end received with 'U1'");
		CHECK(send(inner[0], "after", 5, 0) == 5, "send to the kept socket end: %s", err());
		expect(u, 64, "after", got, 0, "received socket end after a send from the kept one");
		close(u);
	}
	expect(stream[1], 64, "tail", got, 0, "stream 'tail'");
	expect(dgram[1], 64, "plain", got, 0, "datagram 'plain'");
	expect(dgram[1], 64, "two", got, 2, "datagram 'two'");
	check_file(got[0], 2, "file sent with 'two'");
	int received_w = got[1];
	if (got[0] >= 0)
		close(got[0]);
	expect(dgram[1], 64, "last", got, 0, "datagram 'last'");
	if (pipe_r >= 0) {
		expect_read(pipe_r, PIPE_TEXT, "pipe received with 'P'");
		CHECK(write(pipe_w, "kept end", 8) == 8, "write to the pipe's write end: %s", err());
		expect_read(pipe_r, "kept end", "pipe after a write to the end the process kept");
	}
	if (received_w >= 0) {
		pid_t me = getpid();
		CHECK(syscall(SYS_kcmp, me, me, 0 /* KCMP_FILE */, pipe_w, received_w) == 0,
		      "the write end received with 'two' is not the description the process kept");
		CHECK(write(received_w, "sent end", 8) == 8, "write to the received write end: %s", err());
		if (pipe_r >= 0)
			expect_read(pipe_r, "sent end", "pipe after a write to the received end");
		close(received_w);
	}
	if (pipe_r >= 0)
		close(pipe_r);
	victim_finish();
}
