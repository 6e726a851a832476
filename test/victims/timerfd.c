/*
 * timerfd: a CLOCK_MONOTONIC timerfd firing every 20 ms whose expirations the
 * wait loop keeps reading, and a CLOCK_BOOTTIME one armed once an hour ahead.
 * After restore the intervals are exact, the one-hour timer's time left is
 * sane (see check_time_left), fdinfo shows the clocks, and the periodic one
 * keeps expiring.
 */
#include <sys/timerfd.h>
#include "victim.h"

static int periodic, hour;
static uint64_t expirations;
static int64_t hour_set_at, counted_before_ready;

static void tick(void)
{
	uint64_t n = 0;
	ssize_t r = read(periodic, &n, sizeof n);
	if (r == sizeof n)
		expirations += n;
	else
		CHECK(r == -1 && errno == EAGAIN, "read of the timerfd returned %zd, %s", r, err());
}

static void check_clock(int fd, int clock)
{
	char path[64], value[32];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	CHECK(proc_field(path, "clockid", value, sizeof value) == 0 && atoi(value) == clock,
	      "timerfd %d: fdinfo clockid is '%s', expected %d", fd, value, clock);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	periodic = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	SETUP(periodic >= 0);
	hour = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK);
	SETUP(hour >= 0);
	struct itimerspec every_20ms = { { 0, 20000000 }, { 0, 20000000 } }, in_an_hour = { { 0, 0 }, { 3600, 0 } };
	SETUP(timerfd_settime(periodic, 0, &every_20ms, NULL) == 0);
	hour_set_at = now_ns(CLOCK_BOOTTIME);
	SETUP(timerfd_settime(hour, 0, &in_an_hour, NULL) == 0);
	counted_before_ready = now_ns(CLOCK_BOOTTIME) - hour_set_at;
	victim_ready();

	victim_wait(tick);

	struct itimerspec now;
	CHECK(timerfd_gettime(periodic, &now) == 0, "timerfd_gettime: %s", err());
	CHECK(ts_ns(now.it_interval) == 20000000, "periodic interval is %lld ns, expected 20 ms",
	      (long long)ts_ns(now.it_interval));
	CHECK(ts_ns(now.it_value) > 0 && ts_ns(now.it_value) <= 20000000, "periodic timer has %lld ns left",
	      (long long)ts_ns(now.it_value));
	CHECK(timerfd_gettime(hour, &now) == 0, "timerfd_gettime: %s", err());
	CHECK(ts_ns(now.it_interval) == 0, "one-hour timerfd has an interval of %lld ns", (long long)ts_ns(now.it_interval));
	check_time_left("the one-hour timerfd", ts_ns(now.it_value), 3600000000000LL, counted_before_ready,
			now_ns(CLOCK_BOOTTIME) - hour_set_at);
	check_clock(periodic, CLOCK_MONOTONIC);
	check_clock(hour, CLOCK_BOOTTIME);
	uint64_t before = expirations;
	int64_t deadline = now_ns(CLOCK_MONOTONIC) + 2000000000LL;
	while (expirations < before + 3 && now_ns(CLOCK_MONOTONIC) < deadline && !failed()) {
		tick();
		victim_nap_ms(5);
	}
	CHECK(expirations >= before + 3, "periodic timerfd expirations went from %llu to %llu in 2 s",
	      (unsigned long long)before, (unsigned long long)expirations);
	victim_finish();
}
