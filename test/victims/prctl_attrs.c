/*
 * prctl_attrs: a child subreaper with a parent-death signal and its own timer slack. After
 * restore the three are still set (PR_GET_*), and the subreaper still adopts an orphan.
 */
#include "victim.h"
#include <sys/prctl.h>
#include <sys/wait.h>

static volatile sig_atomic_t usr2;
static void on_usr2(int s) { (void)s; usr2++; }

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	signal(SIGUSR2, on_usr2); /* the parent-death signal: after restore the parent is ferry */
	SETUP(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
	SETUP(prctl(PR_SET_PDEATHSIG, SIGUSR2) == 0);
	SETUP(prctl(PR_SET_TIMERSLACK, 123456) == 0);
	victim_ready();

	victim_wait(NULL);
	int v = 0;
	CHECK(prctl(PR_GET_CHILD_SUBREAPER, &v) == 0 && v == 1, "child subreaper is %d", v);
	CHECK(prctl(PR_GET_PDEATHSIG, &v) == 0 && v == SIGUSR2, "parent-death signal is %d", v);
	CHECK(prctl(PR_GET_TIMERSLACK) == 123456, "timer slack is %d", prctl(PR_GET_TIMERSLACK));
	/* an orphaned grandchild comes to us, the subreaper */
	pid_t child = fork();
	if (child == 0) {
		if (fork() == 0) {
			victim_nap_ms(50);
			_exit(getppid() == (pid_t)syscall(SYS_getppid) ? 0 : 1);
		}
		_exit(0);
	}
	int status;
	CHECK(waitpid(child, &status, 0) == child, "child: %s", err());
	pid_t orphan = waitpid(-1, &status, 0);
	CHECK(orphan > 0 && WIFEXITED(status), "the orphaned grandchild was not adopted by this subreaper (%d, %s)", orphan, err());
	victim_finish();
}
