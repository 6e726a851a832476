/*
 * sigactions: handlers with distinct sa_flags and sa_mask on several signals,
 * SIG_IGN on others, flags on a default action, and an alternate signal
 * stack. After restore every signal's action (as the kernel reports it:
 * handler, flags, restorer, mask) and the sigaltstack are as recorded, and
 * the handlers behave: masks applied, SA_ONSTACK runs on the altstack,
 * SA_NODEFER leaves the signal unblocked, SA_RESETHAND resets it.
 */
#include "victim.h"

struct kernel_sigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

#define ALTSTACK_SIZE (64 * 1024)

static struct kernel_sigaction recorded[65];
static stack_t altstack;

static volatile int usr1_runs, usr2_runs, hup_runs, rt_runs;
static volatile int usr1_mask_ok, usr1_code, usr2_on_altstack, usr2_self_unblocked, usr2_int_blocked;

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	sigset_t now;
	sigprocmask(SIG_SETMASK, NULL, &now);
	usr1_mask_ok = sigismember(&now, SIGUSR1) && sigismember(&now, SIGUSR2) && sigismember(&now, SIGHUP);
	usr1_code = si->si_code;
	usr1_runs += sig == SIGUSR1;
}

static void on_usr2(int sig)
{
	char local;
	sigset_t now;
	sigprocmask(SIG_SETMASK, NULL, &now);
	usr2_on_altstack = &local >= (char *)altstack.ss_sp && &local < (char *)altstack.ss_sp + altstack.ss_size;
	usr2_self_unblocked = !sigismember(&now, SIGUSR2);
	usr2_int_blocked = sigismember(&now, SIGINT);
	usr2_runs += sig == SIGUSR2;
}

static void on_hup(int sig) { hup_runs += sig == SIGHUP; }
static void on_rt(int sig, siginfo_t *si, void *uc) { (void)si; (void)uc; rt_runs += sig == SIGRTMIN + 3; }
static void on_winch(int sig) { (void)sig; }

static void set(int sig, void *handler, int flags, const int *blocked)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	if (flags & SA_SIGINFO)
		sa.sa_sigaction = handler;
	else
		sa.sa_handler = handler;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	for (; blocked && *blocked; blocked++)
		sigaddset(&sa.sa_mask, *blocked);
	SETUP(sigaction(sig, &sa, NULL) == 0);
}

static int get(int sig, struct kernel_sigaction *ks)
{
	return (int)syscall(SYS_rt_sigaction, sig, NULL, ks, 8);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	altstack.ss_sp = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	SETUP(altstack.ss_sp != MAP_FAILED);
	altstack.ss_size = ALTSTACK_SIZE;
	SETUP(sigaltstack(&altstack, NULL) == 0);

	set(SIGUSR1, on_usr1, SA_SIGINFO | SA_RESTART, (int[]){ SIGUSR2, SIGHUP, 0 });
	set(SIGUSR2, on_usr2, SA_ONSTACK | SA_NODEFER, (int[]){ SIGINT, SIGRTMIN + 1, 0 });
	set(SIGHUP, on_hup, SA_RESETHAND, NULL);
	set(SIGRTMIN + 3, on_rt, SA_SIGINFO | SA_ONSTACK | SA_RESTART,
	    (int[]){ SIGRTMIN + 4, SIGRTMIN + 5, SIGRTMIN + 6, 0 });
	set(SIGWINCH, on_winch, SA_RESTART, (int[]){ SIGALRM, 0 });
	set(SIGINT, SIG_IGN, 0, NULL);
	set(SIGQUIT, SIG_IGN, 0, NULL);
	set(SIGPIPE, SIG_IGN, 0, NULL);
	set(SIGTTOU, SIG_IGN, SA_RESTART, NULL);
	set(SIGCHLD, SIG_DFL, SA_NOCLDSTOP | SA_NOCLDWAIT, NULL);
	for (int sig = 1; sig <= 64; sig++)
		SETUP(get(sig, &recorded[sig]) == 0);
	victim_ready();

	victim_wait(NULL);

	for (int sig = 1; sig <= 64; sig++) {
		struct kernel_sigaction now, *r = &recorded[sig];
		if (get(sig, &now) != 0) {
			fail("rt_sigaction(%d): %s", sig, err());
			continue;
		}
		CHECK(now.handler == r->handler && now.flags == r->flags && now.restorer == r->restorer &&
			      now.mask == r->mask,
		      "signal %d (%s): handler %p flags %#lx restorer %p mask %#llx, expected %p %#lx %p %#llx", sig,
		      strsignal(sig), now.handler, now.flags, now.restorer, (unsigned long long)now.mask, r->handler,
		      r->flags, r->restorer, (unsigned long long)r->mask);
	}
	stack_t ss;
	if (sigaltstack(NULL, &ss) != 0)
		fail("sigaltstack: %s", err());
	else
		CHECK(ss.ss_sp == altstack.ss_sp && ss.ss_size == altstack.ss_size && ss.ss_flags == 0,
		      "sigaltstack is %p+%zu flags %d, expected %p+%zu flags 0", ss.ss_sp, ss.ss_size, ss.ss_flags,
		      altstack.ss_sp, altstack.ss_size);

	CHECK(raise(SIGUSR1) == 0 && usr1_runs == 1, "SIGUSR1 handler ran %d times", usr1_runs);
	CHECK(usr1_mask_ok, "SIGUSR1 handler ran without SIGUSR1, SIGUSR2 and SIGHUP blocked");
	CHECK(usr1_code == SI_TKILL, "SIGUSR1 handler got si_code %d, expected SI_TKILL", usr1_code);
	CHECK(raise(SIGUSR2) == 0 && usr2_runs == 1, "SIGUSR2 handler ran %d times", usr2_runs);
	CHECK(usr2_on_altstack, "SIGUSR2 (SA_ONSTACK) handler did not run on the alternate stack");
	CHECK(usr2_self_unblocked, "SIGUSR2 (SA_NODEFER) was blocked in its own handler");
	CHECK(usr2_int_blocked, "SIGINT (in SIGUSR2's sa_mask) was not blocked in the handler");
	CHECK(raise(SIGRTMIN + 3) == 0 && rt_runs == 1, "SIGRTMIN+3 handler ran %d times", rt_runs);
	CHECK(raise(SIGINT) == 0, "raise(SIGINT): %s", err()); /* ignored: we are still here */
	CHECK(raise(SIGHUP) == 0 && hup_runs == 1, "SIGHUP handler ran %d times", hup_runs);
	struct sigaction after;
	CHECK(sigaction(SIGHUP, NULL, &after) == 0 && after.sa_handler == SIG_DFL,
	      "SIGHUP (SA_RESETHAND) was not reset to SIG_DFL after its handler ran");
	victim_finish();
}
