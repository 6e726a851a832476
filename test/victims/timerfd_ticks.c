/*
 * timerfd_ticks: timerfd state beyond a running timer. A one-shot timer that
 * fired before the dump and was never read (1 expiration waiting); a 100 ms
 * periodic timer never read for a second (11 expirations waiting, which the
 * kernel counts only when asked); an absolute CLOCK_REALTIME deadline with
 * TFD_TIMER_CANCEL_ON_SET; an absolute CLOCK_BOOTTIME deadline; a disarmed
 * timer that keeps a 5 s interval. After restore the waiting expirations read
 * back, the wall-clock deadline is the same, flags and intervals are kept.
 */
#include <sys/timerfd.h>
#include "victim.h"

#define MS 1000000LL

static int fired, periodic, wall, boot, disarmed;
static int64_t wall_deadline, boot_deadline;

static struct itimerspec spec(int64_t interval, int64_t value)
{
	struct itimerspec s = { { interval / 1000000000LL, interval % 1000000000LL },
				{ value / 1000000000LL, value % 1000000000LL } };
	return s;
}

static void settime_flags(int fd, const char *expected)
{
	char path[64], value[32];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	CHECK(proc_field(path, "settime flags", value, sizeof value) == 0 && strcmp(value, expected) == 0,
	      "timerfd %d: fdinfo settime flags '%s', expected '%s'", fd, value, expected);
}

static struct itimerspec gettime(int fd)
{
	struct itimerspec now;
	memset(&now, 0, sizeof now);
	CHECK(timerfd_gettime(fd, &now) == 0, "timerfd_gettime(%d): %s", fd, err());
	return now;
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	struct itimerspec s;
	fired = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	periodic = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	wall = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	boot = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK);
	disarmed = timerfd_create(CLOCK_MONOTONIC, 0);
	SETUP(fired >= 0 && periodic >= 0 && wall >= 0 && boot >= 0 && disarmed >= 0);
	s = spec(0, 1 * MS);
	SETUP(timerfd_settime(fired, 0, &s, NULL) == 0);
	s = spec(100 * MS, 1 * MS);
	SETUP(timerfd_settime(periodic, 0, &s, NULL) == 0);
	wall_deadline = now_ns(CLOCK_REALTIME) + 30000 * MS;
	s = spec(0, wall_deadline);
	SETUP(timerfd_settime(wall, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &s, NULL) == 0);
	boot_deadline = now_ns(CLOCK_BOOTTIME) + 20000 * MS;
	s = spec(0, boot_deadline);
	SETUP(timerfd_settime(boot, TFD_TIMER_ABSTIME, &s, NULL) == 0);
	s = spec(5000 * MS, 0);
	SETUP(timerfd_settime(disarmed, 0, &s, NULL) == 0);
	victim_nap_ms(1050); /* periodic: expirations at 1, 101, ..., 1001 ms */
	victim_ready();

	victim_wait(NULL);

	uint64_t n = 0;
	CHECK(read(fired, &n, sizeof n) == sizeof n && n == 1, "the fired one-shot timer read %llu (%s), expected 1",
	      (unsigned long long)n, err());
	CHECK(read(fired, &n, sizeof n) == -1 && errno == EAGAIN, "the fired one-shot timer fired again");
	struct itimerspec now = gettime(fired);
	CHECK(ts_ns(now.it_value) == 0 && ts_ns(now.it_interval) == 0, "the fired one-shot timer is armed again");

	n = 0;
	CHECK(read(periodic, &n, sizeof n) == sizeof n && n >= 11,
	      "the periodic timer read %llu expirations (%s), expected at least the 11 that waited before the dump",
	      (unsigned long long)n, err());
	now = gettime(periodic);
	CHECK(ts_ns(now.it_interval) == 100 * MS && ts_ns(now.it_value) > 0 && ts_ns(now.it_value) <= 100 * MS,
	      "periodic timer: interval %lld ns, %lld ns left", (long long)ts_ns(now.it_interval),
	      (long long)ts_ns(now.it_value));

	now = gettime(wall);
	int64_t expected = wall_deadline - now_ns(CLOCK_REALTIME);
	CHECK(ts_ns(now.it_interval) == 0 && llabs(ts_ns(now.it_value) - expected) < 50 * MS,
	      "wall-clock timer has %lld ns left, its deadline is %lld ns away", (long long)ts_ns(now.it_value),
	      (long long)expected);
	settime_flags(wall, "03");

	now = gettime(boot);
	expected = boot_deadline - now_ns(CLOCK_BOOTTIME);
	CHECK(ts_ns(now.it_interval) == 0 && ts_ns(now.it_value) <= 20000 * MS && ts_ns(now.it_value) > expected - 5000 * MS,
	      "boottime timer has %lld ns left, expected at most 20 s and about %lld", (long long)ts_ns(now.it_value),
	      (long long)expected);
	settime_flags(boot, "01");

	now = gettime(disarmed);
	CHECK(ts_ns(now.it_value) == 0 && ts_ns(now.it_interval) == 5000 * MS,
	      "disarmed timer: %lld ns left, interval %lld ns, expected 0 and 5 s", (long long)ts_ns(now.it_value),
	      (long long)ts_ns(now.it_interval));
	CHECK(fcntl(disarmed, F_GETFL) == O_RDWR && fcntl(wall, F_GETFL) == (O_RDWR | O_NONBLOCK) &&
		      fcntl(wall, F_GETFD) == FD_CLOEXEC,
	      "flags changed");
	victim_finish();
}
