/*
 * signalfd: SIGUSR2 and SIGRTMIN+4 are blocked and watched by a non-blocking
 * signalfd; SIGUSR2 is pending (raise) and SIGRTMIN+4 is queued with value
 * 4242. After restore the signalfd has the same mask (fdinfo), polls
 * readable, and reads SIGUSR2 then SIGRTMIN+4 with its value, then EAGAIN.
 */
#include <poll.h>
#include <sys/signalfd.h>
#include "victim.h"

static int sfd, flags;
static char recorded_mask[64];

static void fdinfo_mask(char *out, size_t cap)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", sfd);
	if (proc_field(path, "sigmask", out, cap) != 0) {
		fail("no sigmask in %s: %s", path, err());
		out[0] = 0;
	}
}

static void tick(void)
{
	char mask[64];
	fdinfo_mask(mask, sizeof mask);
	CHECK(strcmp(mask, recorded_mask) == 0, "signalfd mask is %s, expected %s", mask, recorded_mask);
}

static void expect(int signo, int code, int value)
{
	struct signalfd_siginfo si;
	memset(&si, 0, sizeof si);
	ssize_t n = read(sfd, &si, sizeof si);
	if (n != sizeof si) {
		fail("read of the signalfd (expecting signal %d) returned %zd, %s", signo, n, err());
		return;
	}
	CHECK((int)si.ssi_signo == signo && si.ssi_code == code && (int)si.ssi_pid == getpid() &&
		      (value == 0 || si.ssi_int == value),
	      "signalfd gave signal %u code %d pid %u value %d, expected %d code %d pid %d value %d", si.ssi_signo,
	      si.ssi_code, si.ssi_pid, si.ssi_int, signo, code, getpid(), value);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGRTMIN + 4);
	SETUP(sigprocmask(SIG_BLOCK, &set, NULL) == 0);
	sfd = signalfd(-1, &set, SFD_NONBLOCK);
	SETUP(sfd >= 0);
	flags = fcntl(sfd, F_GETFL);
	SETUP(raise(SIGUSR2) == 0);
	SETUP(sigqueue(getpid(), SIGRTMIN + 4, (union sigval){ .sival_int = 4242 }) == 0);
	fdinfo_mask(recorded_mask, sizeof recorded_mask);
	victim_ready();

	victim_wait(tick);

	tick();
	char link[64];
	CHECK(strcmp(fd_link(sfd, link, sizeof link), "anon_inode:[signalfd]") == 0, "fd %d links to '%s'", sfd, link);
	CHECK(fcntl(sfd, F_GETFL) == flags, "F_GETFL is %#o, expected %#o", fcntl(sfd, F_GETFL), flags);
	struct pollfd p = { sfd, POLLIN, 0 };
	CHECK(poll(&p, 1, 0) == 1 && p.revents == POLLIN, "the signalfd does not poll readable (revents %#x)", p.revents);
	expect(SIGUSR2, SI_TKILL, 0);
	expect(SIGRTMIN + 4, SI_QUEUE, 4242);
	struct signalfd_siginfo si;
	ssize_t n = read(sfd, &si, sizeof si);
	CHECK(n == -1 && errno == EAGAIN, "an extra signal came out of the signalfd (read returned %zd, signal %u)", n,
	      si.ssi_signo);
	victim_finish();
}
