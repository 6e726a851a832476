/*
 * unix_sockets: socketpairs of the three types with data queued in both directions (stream
 * bytes, datagrams and seqpackets with their boundaries), a listener bound to a path and one
 * bound to an abstract name. After restore the queued data comes out in order with the same
 * boundaries, the pairs still talk, and both listeners accept new connections.
 */
#include "victim.h"
#include <sys/socket.h>
#include <stddef.h>
#include <sys/un.h>

static int stream[2], dgram[2], seqpacket[2], by_path, abstract;
static struct sockaddr_un path_addr, abstract_addr;
static socklen_t abstract_len;

static void expect(int fd, const char *want, size_t len, const char *what)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
	CHECK(n == (ssize_t)len && memcmp(buf, want, len) == 0, "%s: got %zd bytes '%.*s', expected '%.*s'",
	      what, n, n > 0 ? (int)n : 0, buf, (int)len, want);
}

static void can_connect(const struct sockaddr_un *addr, socklen_t len, int listener, const char *what)
{
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(c >= 0 && connect(c, (const struct sockaddr *)addr, len) == 0, "%s: connect: %s", what, err());
	int a = accept(listener, NULL, NULL);
	CHECK(a >= 0, "%s: accept: %s", what, err());
	if (a >= 0)
		close(a);
	close(c);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	SETUP(socketpair(AF_UNIX, SOCK_STREAM, 0, stream) == 0);
	SETUP(socketpair(AF_UNIX, SOCK_DGRAM, 0, dgram) == 0);
	SETUP(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, seqpacket) == 0);
	SETUP(send(stream[0], "stream to 1", 11, 0) == 11 && send(stream[1], "stream to 0", 11, 0) == 11);
	SETUP(send(dgram[0], "d1", 2, 0) == 2 && send(dgram[0], "datagram two", 12, 0) == 12 && send(dgram[1], "back", 4, 0) == 4);
	SETUP(send(seqpacket[1], "packet one", 10, 0) == 10 && send(seqpacket[1], "p2", 2, 0) == 2);

	by_path = socket(AF_UNIX, SOCK_STREAM, 0);
	path_addr.sun_family = AF_UNIX;
	snprintf(path_addr.sun_path, sizeof path_addr.sun_path, "%s", victim_file("listener.sock"));
	SETUP(bind(by_path, (struct sockaddr *)&path_addr, sizeof path_addr) == 0 && listen(by_path, 8) == 0);
	abstract = socket(AF_UNIX, SOCK_STREAM, 0);
	abstract_addr.sun_family = AF_UNIX;
	int n = snprintf(abstract_addr.sun_path + 1, sizeof abstract_addr.sun_path - 1, "ferry-victim-%d", getpid());
	abstract_len = offsetof(struct sockaddr_un, sun_path) + 1 + n;
	SETUP(bind(abstract, (struct sockaddr *)&abstract_addr, abstract_len) == 0 && listen(abstract, 8) == 0);
	victim_ready();

	victim_wait(NULL);
	expect(stream[1], "stream to 1", 11, "stream end 1");
	expect(stream[0], "stream to 0", 11, "stream end 0");
	expect(dgram[1], "d1", 2, "first datagram");
	expect(dgram[1], "datagram two", 12, "second datagram");
	expect(dgram[0], "back", 4, "datagram the other way");
	expect(seqpacket[0], "packet one", 10, "first seqpacket");
	expect(seqpacket[0], "p2", 2, "second seqpacket");
	CHECK(send(stream[0], "more", 4, 0) == 4, "stream send after restore: %s", err());
	expect(stream[1], "more", 4, "stream after restore");
	CHECK(send(dgram[1], "new", 3, 0) == 3, "dgram send after restore: %s", err());
	expect(dgram[0], "new", 3, "datagram after restore");
	struct sockaddr_un a;
	socklen_t len = sizeof a;
	CHECK(getsockname(by_path, (struct sockaddr *)&a, &len) == 0 && strcmp(a.sun_path, path_addr.sun_path) == 0,
	      "path listener is named '%s'", a.sun_path);
	can_connect(&path_addr, sizeof path_addr, by_path, "path listener");
	can_connect(&abstract_addr, abstract_len, abstract, "abstract listener");
	victim_finish();
}
