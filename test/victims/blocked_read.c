/*
 * blocked_read: the process blocks in read() on an empty pipe it owns. It is
 * frozen inside the syscall; after restore the read must go on blocking until
 * SIGTERM and then return -1 with EINTR: returning data, 0, another errno
 * (e.g. 512 = ERESTARTSYS leaking out), or EINTR with no signal is a failure.
 */
#include <sys/ioctl.h>
#include "victim.h"

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	int ends[2];
	SETUP(pipe(ends) == 0);
	victim_ready();

	char buf[16];
	ssize_t n = read(ends[0], buf, sizeof buf);
	int saved = errno;
	victim_begin_check();

	errno = saved;
	CHECK(n == -1 && saved == EINTR, "read of the empty pipe returned %zd, %s; expected -1 with EINTR", n, err());
	CHECK(victim_stop, "read returned EINTR but no signal handler ran: the syscall restart was lost");
	int queued = -1;
	CHECK(ioctl(ends[0], FIONREAD, &queued) == 0 && queued == 0, "the pipe holds %d bytes, expected none", queued);
	CHECK(write(ends[1], "k", 1) == 1 && read(ends[0], buf, sizeof buf) == 1 && buf[0] == 'k',
	      "the pipe's ends are no longer connected");
	victim_finish();
}
