/*
 * tcp: a listening socket on 127.0.0.1 and an established connection to it, both ends in this
 * process, with unread data queued in both directions (and more sent than the peer has read).
 * After restore: addresses and ports unchanged, the queued bytes arrive in order, the stream
 * carries on both ways, and the listener still accepts new connections.
 */
#include "victim.h"
#include <netinet/tcp.h>

#define BIG (64 * 1024)
static int listener, client, server;
static struct sockaddr_in lname, cname, sname;
static unsigned char big[BIG];

static void read_exact(int fd, void *buf, size_t len, const char *what)
{
	size_t got = 0;
	for (int tries = 0; got < len && tries < 5000; tries++) {
		ssize_t n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n > 0)
			got += n;
		else if (n == 0) {
			fail("%s: connection closed after %zu of %zu bytes", what, got, len);
			return;
		} else if (errno == EAGAIN || errno == EINTR)
			victim_nap_ms(1);
		else {
			fail("%s: recv: %s", what, err());
			return;
		}
	}
	CHECK(got == len, "%s: only %zu of %zu bytes arrived", what, got, len);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	socklen_t len = sizeof lname;
	listener = socket(AF_INET, SOCK_STREAM, 0);
	SETUP(listener >= 0);
	int one = 1;
	SETUP(setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
	lname.sin_family = AF_INET;
	lname.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	SETUP(bind(listener, (struct sockaddr *)&lname, sizeof lname) == 0);
	SETUP(listen(listener, 16) == 0);
	SETUP(getsockname(listener, (struct sockaddr *)&lname, &len) == 0);
	client = socket(AF_INET, SOCK_STREAM, 0);
	SETUP(client >= 0 && connect(client, (struct sockaddr *)&lname, sizeof lname) == 0);
	SETUP(setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
	server = accept(listener, NULL, NULL);
	SETUP(server >= 0);
	len = sizeof cname;
	SETUP(getsockname(client, (struct sockaddr *)&cname, &len) == 0);
	len = sizeof sname;
	SETUP(getsockname(server, (struct sockaddr *)&sname, &len) == 0);
	fill_pattern(big, BIG, 31);
	SETUP(send(client, "hello, server", 13, 0) == 13);
	SETUP(send(server, big, BIG, 0) == BIG);
	victim_ready();

	victim_wait(NULL);
	same_inet_name(listener, &lname, 0, "listener");
	same_inet_name(client, &cname, 0, "client");
	same_inet_name(client, &lname, 1, "client");
	same_inet_name(server, &sname, 0, "server");
	same_inet_name(server, &cname, 1, "server");
	int nodelay = 0;
	len = sizeof nodelay;
	CHECK(getsockopt(client, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len) == 0 && nodelay, "client lost TCP_NODELAY");
	char hello[14] = {0};
	read_exact(server, hello, 13, "server side");
	CHECK(memcmp(hello, "hello, server", 13) == 0, "server read '%s'", hello);
	static unsigned char got[BIG];
	read_exact(client, got, BIG, "client side");
	long off = pattern_mismatch(got, BIG, 31);
	CHECK(off < 0, "client read different data at byte %ld", off);
	/* the stream carries on both ways */
	CHECK(send(client, "again", 5, 0) == 5, "send after restore: %s", err());
	char again[6] = {0};
	read_exact(server, again, 5, "server after restore");
	CHECK(memcmp(again, "again", 5) == 0, "server read '%s' after restore", again);
	/* and the listener accepts */
	int c2 = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(c2 >= 0 && connect(c2, (struct sockaddr *)&lname, sizeof lname) == 0, "new connection to the listener: %s", err());
	int s2 = accept(listener, NULL, NULL);
	CHECK(s2 >= 0, "accept after restore: %s", err());
	close(c2);
	if (s2 >= 0)
		close(s2);
	victim_finish();
}
