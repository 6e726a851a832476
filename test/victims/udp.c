/*
 * udp: two UDP sockets on 127.0.0.1, bound and connected to each other, and an unconnected one.
 * After restore: same names and peers, and datagrams flow both ways with their boundaries.
 */
#include "victim.h"

static int a, b, lone;
static struct sockaddr_in na, nb, nl;

static void bound(int *fd, struct sockaddr_in *name)
{
	*fd = socket(AF_INET, SOCK_DGRAM, 0);
	SETUP(*fd >= 0);
	name->sin_family = AF_INET;
	name->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof *name;
	SETUP(bind(*fd, (struct sockaddr *)name, sizeof *name) == 0 && getsockname(*fd, (struct sockaddr *)name, &len) == 0);
}

static void roundtrip(int from, int to, const char *msg, const char *what)
{
	char buf[64] = {0};
	CHECK(send(from, msg, strlen(msg), 0) == (ssize_t)strlen(msg), "%s: send: %s", what, err());
	ssize_t n = -1;
	for (int i = 0; i < 500 && n < 0; i++) {
		n = recv(to, buf, sizeof buf, MSG_DONTWAIT);
		if (n < 0)
			victim_nap_ms(1);
	}
	CHECK(n == (ssize_t)strlen(msg) && memcmp(buf, msg, n) == 0, "%s: received %zd bytes '%s'", what, n, buf);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	bound(&a, &na);
	bound(&b, &nb);
	bound(&lone, &nl);
	SETUP(connect(a, (struct sockaddr *)&nb, sizeof nb) == 0 && connect(b, (struct sockaddr *)&na, sizeof na) == 0);
	victim_ready();

	victim_wait(NULL);
	same_inet_name(a, &na, 0, "a");
	same_inet_name(b, &nb, 0, "b");
	same_inet_name(a, &nb, 1, "a's peer");
	same_inet_name(b, &na, 1, "b's peer");
	same_inet_name(lone, &nl, 0, "unconnected");
	roundtrip(a, b, "ping", "a to b");
	roundtrip(b, a, "pong!", "b to a");
	victim_finish();
}
