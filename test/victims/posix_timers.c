/*
 * posix_timers: three POSIX timers. A CLOCK_MONOTONIC one signals SIGRTMIN+1
 * with value 0xfe77 every 30 ms; a CLOCK_REALTIME one is armed once, an hour
 * ahead; a CLOCK_BOOTTIME one (SIGEV_NONE) is disarmed. After restore the
 * same timer ids work with timer_gettime, intervals are exact, remaining times
 * are sane (see check_time_left), /proc/self/timers lists exactly these ids, and signals from the
 * periodic timer keep arriving with its value and id.
 */
#include "victim.h"

#define SIG_TICK (SIGRTMIN + 1)

static timer_t periodic, one_shot, disarmed;
static volatile int ticks, bad_value, bad_id, bad_code;
static int64_t one_shot_set_at, counted_before_ready;

static void on_tick(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	ticks++;
	if (si->si_value.sival_int != 0xfe77)
		bad_value = si->si_value.sival_int;
	if (si->si_timerid != (int)(intptr_t)periodic)
		bad_id = si->si_timerid;
	if (si->si_code != SI_TIMER)
		bad_code = si->si_code;
}

static timer_t make_timer(clockid_t clock, int notify, int signo, int value)
{
	struct sigevent sev;
	timer_t id;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = notify;
	sev.sigev_signo = signo;
	sev.sigev_value.sival_int = value;
	SETUP(timer_create(clock, &sev, &id) == 0);
	return id;
}

static void get(timer_t id, const char *name, struct itimerspec *out)
{
	memset(out, 0, sizeof *out);
	CHECK(timer_gettime(id, out) == 0, "timer_gettime(%s, id %d): %s", name, (int)(intptr_t)id, err());
}

static void check_proc_timers(void)
{
	static char text[4096];
	int seen = 0, ids[] = { (int)(intptr_t)periodic, (int)(intptr_t)one_shot, (int)(intptr_t)disarmed };
	if (read_text("/proc/self/timers", text, sizeof text) < 0) {
		fail("read /proc/self/timers: %s", err());
		return;
	}
	for (char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, "ID: ", 4) != 0)
			continue;
		int id = atoi(p + 4), known = 0;
		for (int i = 0; i < 3; i++)
			known |= id == ids[i];
		CHECK(known, "/proc/self/timers lists an unknown timer id %d", id);
		seen++;
	}
	CHECK(seen == 3, "/proc/self/timers lists %d timers, expected 3", seen);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_tick;
	sa.sa_flags = SA_SIGINFO;
	SETUP(sigaction(SIG_TICK, &sa, NULL) == 0);
	periodic = make_timer(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIG_TICK, 0xfe77);
	one_shot = make_timer(CLOCK_REALTIME, SIGEV_SIGNAL, SIGRTMIN + 2, 0xbeef);
	disarmed = make_timer(CLOCK_BOOTTIME, SIGEV_NONE, 0, 0);
	struct itimerspec every_30ms = { { 0, 30000000 }, { 0, 30000000 } }, in_an_hour = { { 0, 0 }, { 3600, 0 } };
	SETUP(timer_settime(periodic, 0, &every_30ms, NULL) == 0);
	one_shot_set_at = now_ns(CLOCK_MONOTONIC);
	SETUP(timer_settime(one_shot, 0, &in_an_hour, NULL) == 0);
	while (ticks == 0)
		victim_nap_ms(5);
	check_proc_timers();
	counted_before_ready = now_ns(CLOCK_MONOTONIC) - one_shot_set_at;
	victim_ready();

	victim_wait(NULL);

	struct itimerspec now;
	get(periodic, "periodic", &now);
	CHECK(ts_ns(now.it_interval) == 30000000, "periodic timer interval is %lld ns, expected 30 ms",
	      (long long)ts_ns(now.it_interval));
	CHECK(ts_ns(now.it_value) > 0 && ts_ns(now.it_value) <= 30000000, "periodic timer value is %lld ns",
	      (long long)ts_ns(now.it_value));
	get(one_shot, "one-shot", &now);
	CHECK(ts_ns(now.it_interval) == 0, "one-shot timer has an interval of %lld ns", (long long)ts_ns(now.it_interval));
	check_time_left("the one-hour timer", ts_ns(now.it_value), 3600000000000LL, counted_before_ready,
			now_ns(CLOCK_MONOTONIC) - one_shot_set_at);
	get(disarmed, "disarmed", &now);
	CHECK(ts_ns(now.it_value) == 0 && ts_ns(now.it_interval) == 0, "the disarmed timer is armed");
	check_proc_timers();
	int before = ticks;
	int64_t deadline = now_ns(CLOCK_MONOTONIC) + 2000000000LL;
	while (ticks < before + 3 && now_ns(CLOCK_MONOTONIC) < deadline)
		victim_nap_ms(5);
	CHECK(ticks >= before + 3, "periodic timer signals went from %d to %d in 2 s", before, (int)ticks);
	CHECK(!bad_value, "a timer signal carried value %#x, expected 0xfe77", bad_value);
	CHECK(!bad_id, "a timer signal carried timer id %d, expected %d", bad_id, (int)(intptr_t)periodic);
	CHECK(!bad_code, "a timer signal had si_code %d, expected SI_TIMER", bad_code);
	victim_finish();
}
