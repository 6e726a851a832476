/*
 * itimers: ITIMER_REAL fires every 50 ms and a SIGALRM handler counts; the
 * count must keep growing after restore. ITIMER_VIRTUAL (100 s, interval 7 s)
 * and ITIMER_PROF (200 s, interval 13 s) are set too: their intervals must be
 * exact and their values sane.
 */
#include <sys/time.h>
#include "victim.h"

static volatile sig_atomic_t alarms;

static void on_alarm(int sig) { (void)sig; alarms++; }

static void check_timer(int which, const char *name, long interval_us, long value_max_us)
{
	struct itimerval now;
	if (getitimer(which, &now) != 0) {
		fail("getitimer(%s): %s", name, err());
		return;
	}
	long interval = now.it_interval.tv_sec * 1000000L + now.it_interval.tv_usec;
	long value = now.it_value.tv_sec * 1000000L + now.it_value.tv_usec;
	CHECK(interval == interval_us, "%s interval is %ld us, expected %ld", name, interval, interval_us);
	/* CPU-time timers are kept in ticks: allow their rounding */
	CHECK(value > 0 && value <= value_max_us + 100000, "%s value is %ld us, expected within (0, %ld]", name,
	      value, value_max_us);
}

static void set_timer(int which, long value_s, long value_us, long interval_s, long interval_us)
{
	struct itimerval it = { { interval_s, interval_us }, { value_s, value_us } };
	SETUP(setitimer(which, &it, NULL) == 0);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm; /* no SA_RESTART: naps see EINTR, which they accept */
	SETUP(sigaction(SIGALRM, &sa, NULL) == 0);
	set_timer(ITIMER_REAL, 0, 50000, 0, 50000);
	set_timer(ITIMER_VIRTUAL, 100, 0, 7, 0);
	set_timer(ITIMER_PROF, 200, 0, 13, 0);
	victim_ready();

	victim_wait(NULL);

	check_timer(ITIMER_REAL, "ITIMER_REAL", 50000, 50000);
	check_timer(ITIMER_VIRTUAL, "ITIMER_VIRTUAL", 7000000, 100000000);
	check_timer(ITIMER_PROF, "ITIMER_PROF", 13000000, 200000000);
	int before = alarms;
	int64_t deadline = now_ns(CLOCK_MONOTONIC) + 2000000000LL;
	while (alarms < before + 3 && now_ns(CLOCK_MONOTONIC) < deadline)
		victim_nap_ms(5);
	CHECK(alarms >= before + 3, "SIGALRM count went from %d to %d in 2 s with a 50 ms ITIMER_REAL", before,
	      (int)alarms);
	victim_finish();
}
