/*
 * blocked_futex: the process waits with FUTEX_WAIT on a private word that
 * never changes, 200 ms at a time (the kernel restarts timed futex waits
 * through restart_block). ETIMEDOUT just loops; SIGTERM must end the wait with
 * -1/EINTR. A wake-up (0), EAGAIN (the word changed), EINTR with no signal, or
 * any other errno is a failure. The word must be unchanged after restore.
 */
#include <linux/futex.h>
#include "victim.h"

static uint32_t word = 0x5eed;

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	victim_ready();

	long timeouts = 0, rc;
	int saved;
	for (;;) {
		struct timespec timeout = { 0, 200000000 };
		rc = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0x5eed, &timeout, NULL, 0);
		saved = errno;
		if (rc == -1 && saved == ETIMEDOUT)
			timeouts++;
		else
			break;
	}
	victim_begin_check();

	errno = saved;
	CHECK(rc == -1 && saved == EINTR, "FUTEX_WAIT returned %ld, %s after %ld timeouts; expected -1 with EINTR", rc,
	      err(), timeouts);
	CHECK(victim_stop, "FUTEX_WAIT returned EINTR but no signal handler ran: the syscall restart was lost");
	CHECK(word == 0x5eed, "the futex word is %#x, expected 0x5eed", word);
	victim_finish();
}
