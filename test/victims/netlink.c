/*
 * netlink: a NETLINK_ROUTE socket bound to a port id and the link multicast group, and an
 * unbound NETLINK_KOBJECT_UEVENT socket. After restore: same protocol, port id and groups, and
 * the route socket still answers a request (RTM_GETLINK dump of the loopback device).
 */
#include "victim.h"
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

static int route, uevent;
static struct sockaddr_nl bound;

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	route = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	SETUP(route >= 0);
	bound.nl_family = AF_NETLINK;
	bound.nl_pid = getpid();
	bound.nl_groups = RTMGRP_LINK;
	SETUP(bind(route, (struct sockaddr *)&bound, sizeof bound) == 0);
	uevent = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT);
	SETUP(uevent >= 0);
	victim_ready();

	victim_wait(NULL);
	struct sockaddr_nl a;
	socklen_t len = sizeof a;
	CHECK(getsockname(route, (struct sockaddr *)&a, &len) == 0 && a.nl_pid == bound.nl_pid && a.nl_groups == bound.nl_groups,
	      "route socket is bound to port %u groups %x", a.nl_pid, a.nl_groups);
	int proto = 0;
	len = sizeof proto;
	CHECK(getsockopt(uevent, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 && proto == NETLINK_KOBJECT_UEVENT, "uevent socket protocol %d", proto);
	struct { struct nlmsghdr h; struct ifinfomsg i; } req = {
		.h = { .nlmsg_len = sizeof req, .nlmsg_type = RTM_GETLINK, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1 },
		.i = { .ifi_family = AF_UNSPEC },
	};
	CHECK(send(route, &req, sizeof req, 0) == sizeof req, "RTM_GETLINK: %s", err());
	char buf[16384];
	ssize_t n = recv(route, buf, sizeof buf, 0);
	CHECK(n > (ssize_t)sizeof(struct nlmsghdr) && ((struct nlmsghdr *)buf)->nlmsg_type == RTM_NEWLINK, "no link in the answer (%zd bytes)", n);
	victim_finish();
}
