/*
 * sigpending: with SIGUSR1, SIGUSR2 and SIGRTMIN+2 blocked, the process queues
 * SIGUSR1 to itself with sigqueue (value 0x1234, process-wide), SIGUSR2 to its
 * thread with rt_tgsigqueueinfo (value 0x5678, thread-private) and SIGRTMIN+2
 * three times (values 111, 222, 333). After restore the signals are pending in
 * the same queues (SigPnd/ShdPnd) and sigtimedwait returns exactly them, with
 * their values and senders, in the kernel's order: private first, then
 * shared by number, realtime instances in the order they were sent.
 */
#include "victim.h"

#define RT (SIGRTMIN + 2)

struct expected { int signo; int value; };
static int blocked[] = { SIGUSR1, SIGUSR2, 0 };

static uint64_t bit(int sig) { return 1ULL << (sig - 1); }

static void check_queues(void)
{
	char text[64];
	uint64_t private_expected = bit(SIGUSR2), shared_expected = bit(SIGUSR1) | bit(RT);
	if (proc_field("/proc/self/status", "SigPnd", text, sizeof text) != 0) {
		fail("no SigPnd in /proc/self/status: %s", err());
		return;
	}
	uint64_t private_now = strtoull(text, NULL, 16) & ~bit(SIGTERM);
	CHECK(private_now == private_expected, "thread-private pending (SigPnd) is %#llx, expected %#llx",
	      (unsigned long long)private_now, (unsigned long long)private_expected);
	if (proc_field("/proc/self/status", "ShdPnd", text, sizeof text) != 0) {
		fail("no ShdPnd in /proc/self/status: %s", err());
		return;
	}
	uint64_t shared_now = strtoull(text, NULL, 16) & ~bit(SIGTERM);
	CHECK(shared_now == shared_expected, "process-wide pending (ShdPnd) is %#llx, expected %#llx",
	      (unsigned long long)shared_now, (unsigned long long)shared_expected);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	sigset_t set;
	sigemptyset(&set);
	for (int *s = blocked; *s; s++)
		sigaddset(&set, *s);
	sigaddset(&set, RT);
	SETUP(sigprocmask(SIG_BLOCK, &set, NULL) == 0);

	SETUP(sigqueue(getpid(), SIGUSR1, (union sigval){ .sival_int = 0x1234 }) == 0);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_signo = SIGUSR2;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = 0x5678;
	SETUP(syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGUSR2, &si) == 0);
	for (int v = 111; v <= 333; v += 111)
		SETUP(sigqueue(getpid(), RT, (union sigval){ .sival_int = v }) == 0);
	check_queues();
	victim_ready();

	victim_wait(check_queues);

	check_queues();
	struct expected order[] = { { SIGUSR2, 0x5678 }, { SIGUSR1, 0x1234 }, { RT, 111 }, { RT, 222 }, { RT, 333 } };
	struct timespec zero = { 0, 0 };
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		memset(&si, 0, sizeof si);
		int sig = sigtimedwait(&set, &si, &zero);
		if (sig < 0) {
			fail("sigtimedwait #%zu (expecting signal %d value %d): %s", i, order[i].signo, order[i].value, err());
			break;
		}
		CHECK(sig == order[i].signo && si.si_value.sival_int == order[i].value,
		      "sigtimedwait #%zu returned signal %d value %d, expected signal %d value %d", i, sig,
		      si.si_value.sival_int, order[i].signo, order[i].value);
		CHECK(si.si_code == SI_QUEUE && si.si_pid == getpid() && si.si_uid == getuid(),
		      "signal %d: si_code %d pid %d uid %d, expected SI_QUEUE from pid %d uid %d", sig, si.si_code,
		      si.si_pid, si.si_uid, getpid(), getuid());
	}
	int extra = sigtimedwait(&set, &si, &zero);
	CHECK(extra == -1 && errno == EAGAIN, "an extra signal %d (value %d) was pending", extra, si.si_value.sival_int);
	victim_finish();
}
