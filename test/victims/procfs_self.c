/*
 * procfs_self: the process holds files of its own /proc directory open: the fdinfo of one of its
 * pipes (opened after the pipe, so its fd number is higher), and its status file read part way.
 * After restore both still describe the process itself: the fdinfo shows the pipe's flags, the
 * status file goes on from its offset and names the same PID.
 */
#include "victim.h"

static int pipefd[2], fdinfo, status;
static off_t status_pos;

/* The "flags:" line of the open fdinfo, read from its start. */
static long fdinfo_flags(void)
{
	char buf[512];
	ssize_t n = pread(fdinfo, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	const char *f = strstr(buf, "flags:");
	return f ? strtol(f + 6, NULL, 8) : -1;
}

static void tick(void)
{
	CHECK((fdinfo_flags() & O_NONBLOCK) != 0, "fdinfo of the pipe shows flags %lo, without O_NONBLOCK", fdinfo_flags());
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	SETUP(pipe2(pipefd, O_NONBLOCK) == 0);
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pipefd[1]);
	fdinfo = open(path, O_RDONLY);
	SETUP(fdinfo > pipefd[1]);
	status = open("/proc/self/status", O_RDONLY);
	SETUP(status >= 0);
	char head[6];
	SETUP(read(status, head, sizeof head) == sizeof head && memcmp(head, "Name:\t", 6) == 0);
	status_pos = lseek(status, 0, SEEK_CUR);
	tick();
	victim_ready();

	victim_wait(tick);

	tick();
	CHECK(lseek(status, 0, SEEK_CUR) == status_pos, "the status file is at %ld, expected %ld",
	      (long)lseek(status, 0, SEEK_CUR), (long)status_pos);
	char buf[4096];
	ssize_t n = pread(status, buf, sizeof buf - 1, 0);
	CHECK(n > 0, "read of the status file: %s", err());
	buf[n > 0 ? n : 0] = 0;
	char want[32];
	snprintf(want, sizeof want, "\nPid:\t%d\n", getpid());
	CHECK(strstr(buf, want) != NULL, "the status file does not name PID %d", getpid());
	victim_finish();
}
