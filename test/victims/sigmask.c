/*
 * sigmask: SIGUSR1, SIGUSR2, SIGHUP, SIGINT, SIGWINCH, SIGRTMIN+5 and SIGRTMAX
 * are blocked. After restore the mask (sigprocmask and SigBlk in
 * /proc/self/status) is the same, and a SIGUSR1 sent then stays pending
 * instead of reaching its handler.
 */
#include "victim.h"

static uint64_t recorded;
static volatile int usr1_delivered;

static void on_usr1(int sig) { (void)sig; usr1_delivered = 1; }

static uint64_t mask_bits(const sigset_t *set)
{
	uint64_t bits = 0;
	for (int sig = 1; sig <= 64; sig++)
		if (sigismember(set, sig) == 1)
			bits |= 1ULL << (sig - 1);
	return bits;
}

static uint64_t current_mask(void)
{
	sigset_t now;
	sigemptyset(&now);
	if (sigprocmask(SIG_SETMASK, NULL, &now) != 0)
		fail("sigprocmask: %s", err());
	return mask_bits(&now);
}

static void tick(void)
{
	uint64_t now = current_mask();
	CHECK(now == recorded, "blocked mask is %#llx, expected %#llx", (unsigned long long)now,
	      (unsigned long long)recorded);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	SETUP(sigaction(SIGUSR1, &sa, NULL) == 0);
	sigset_t block;
	sigemptyset(&block);
	int sigs[] = { SIGUSR1, SIGUSR2, SIGHUP, SIGINT, SIGWINCH, SIGRTMIN + 5, SIGRTMAX };
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&block, sigs[i]);
	SETUP(sigprocmask(SIG_SETMASK, &block, NULL) == 0);
	recorded = current_mask();
	victim_ready();

	while (!victim_stop) {
		tick();
		victim_nap_ms(1);
	}
	tick(); /* before victim_begin_check() adds SIGTERM */
	victim_begin_check();

	char status[64];
	if (proc_field("/proc/self/status", "SigBlk", status, sizeof status) != 0)
		fail("no SigBlk in /proc/self/status: %s", err());
	else
		CHECK(strtoull(status, NULL, 16) == (recorded | 1ULL << (SIGTERM - 1)),
		      "SigBlk is %s, expected %016llx plus SIGTERM", status, (unsigned long long)recorded);
	CHECK(raise(SIGUSR1) == 0, "raise: %s", err());
	CHECK(!usr1_delivered, "SIGUSR1 was delivered although it is blocked");
	sigset_t pending;
	CHECK(sigpending(&pending) == 0 && sigismember(&pending, SIGUSR1) == 1, "blocked SIGUSR1 is not pending");
	victim_finish();
}
