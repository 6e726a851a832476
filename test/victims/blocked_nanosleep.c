/*
 * blocked_nanosleep: the process sleeps in nanosleep(1000 s). It is frozen
 * inside the syscall (the kernel restarts such sleeps through restart_block).
 * After restore the sleep must go on until SIGTERM, then return -1/EINTR with
 * a sane time left (see check_time_left: the time spent frozen may count or
 * not). Returning early, another errno (516 = ERESTART_RESTARTBLOCK leaking
 * out) or EINTR with no signal is a failure.
 */
#include "victim.h"

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	victim_ready();

	struct timespec request = { 1000, 0 }, left = { -1, -1 };
	int64_t began = now_ns(CLOCK_MONOTONIC);
	int rc = nanosleep(&request, &left);
	int saved = errno;
	int64_t slept = now_ns(CLOCK_MONOTONIC) - began;
	victim_begin_check();

	errno = saved;
	CHECK(rc == -1 && saved == EINTR, "nanosleep returned %d, %s; expected -1 with EINTR", rc, err());
	CHECK(victim_stop, "nanosleep returned EINTR but no signal handler ran: the syscall restart was lost");
	check_time_left("nanosleep", ts_ns(left), 1000000000000LL, 0, slept);
	victim_finish();
}
