/*
 * blocked_poll: the process waits in poll() with no timeout on an empty pipe
 * and an eventfd holding 0. Even without a timeout the kernel restarts poll()
 * through restart_block (-ERESTART_RESTARTBLOCK). After restore the poll must
 * go on until SIGTERM, then return -1/EINTR (not errno 516, not EINTR without
 * a signal); both fds must still be idle.
 */
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include "victim.h"

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	int ends[2];
	SETUP(pipe(ends) == 0);
	int efd = eventfd(0, EFD_NONBLOCK);
	SETUP(efd >= 0);
	victim_ready();

	struct pollfd fds[2] = { { ends[0], POLLIN, 0 }, { efd, POLLIN, 0 } };
	int rc = poll(fds, 2, -1);
	int saved = errno;
	victim_begin_check();

	errno = saved;
	CHECK(rc == -1 && saved == EINTR, "poll returned %d (revents %#x %#x), %s; expected -1 with EINTR", rc,
	      fds[0].revents, fds[1].revents, err());
	CHECK(victim_stop, "poll returned EINTR but no signal handler ran: the syscall restart was lost");
	int queued = -1;
	uint64_t value;
	CHECK(ioctl(ends[0], FIONREAD, &queued) == 0 && queued == 0, "the pipe holds %d bytes, expected none", queued);
	CHECK(read(efd, &value, sizeof value) == -1 && errno == EAGAIN, "the eventfd is no longer 0");
	rc = poll(fds, 2, 0);
	CHECK(rc == 0, "poll with timeout 0 returned %d, expected 0 ready fds (%s)", rc, err());
	victim_finish();
}
