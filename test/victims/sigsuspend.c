/*
 * sigsuspend: SIGTERM, SIGUSR1 and SIGHUP are blocked, and the process waits
 * in sigsuspend() with a temporary mask {SIGUSR2, SIGRTMAX} that lets SIGTERM
 * in. While it is frozen the kernel shows the temporary mask; after restore
 * and SIGTERM, sigsuspend must return -1/EINTR and the mask must be the real
 * one again (a restore that took the temporary mask for the real one fails).
 */
#include "victim.h"

static uint64_t mask_bits(void)
{
	sigset_t now;
	sigemptyset(&now);
	if (sigprocmask(SIG_SETMASK, NULL, &now) != 0)
		fail("sigprocmask: %s", err());
	uint64_t bits = 0;
	for (int sig = 1; sig <= 64; sig++)
		if (sigismember(&now, sig) == 1)
			bits |= 1ULL << (sig - 1);
	return bits;
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	sigset_t real, temporary;
	sigemptyset(&real);
	sigaddset(&real, SIGTERM);
	sigaddset(&real, SIGUSR1);
	sigaddset(&real, SIGHUP);
	sigemptyset(&temporary);
	sigaddset(&temporary, SIGUSR2);
	sigaddset(&temporary, SIGRTMAX);
	SETUP(sigprocmask(SIG_SETMASK, &real, NULL) == 0);
	uint64_t recorded = mask_bits();
	victim_ready();

	int rc = sigsuspend(&temporary);
	CHECK(rc == -1 && errno == EINTR, "sigsuspend returned %d, %s; expected -1 with EINTR", rc, err());
	CHECK(victim_stop, "sigsuspend returned without the SIGTERM handler having run");
	uint64_t now = mask_bits();
	CHECK(now == recorded, "mask after sigsuspend is %#llx, expected the real mask %#llx (temporary one was %#llx)",
	      (unsigned long long)now, (unsigned long long)recorded,
	      (unsigned long long)(1ULL << (SIGUSR2 - 1) | 1ULL << (SIGRTMAX - 1)));
	victim_begin_check();
	victim_finish();
}
