/*
 * tree: a parent, two children and a grandchild, plus two zombie children (one exited with
 * code 7, one killed by SIGUSR1) that the parent reaps only at the end. They share a MAP_SHARED counter page, one open
 * file description (its offset moves for all), and a pipe from the parent to child 1. Child 2
 * leads its own process group. After restore, each process checks its PID, parent, group and
 * session, and reports into the shared page; the parent reaps them all and judges.
 */
#include "victim.h"
#include <sys/wait.h>

struct shared {
	volatile uint64_t ticks[4];     /* each process keeps counting here */
	volatile int verdict[4];        /* 1 pass, -1 fail */
	char why[4][160];
	volatile pid_t pids[4];         /* parent, child1, child2, grandchild */
};
static struct shared *sh;
static int shared_fd;               /* one description for all: offsets are shared */
static int pipefd[2];
#define pids sh->pids

static void report(int who, int ok, const char *fmt, ...)
{
	if (!ok && sh->verdict[who] == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(sh->why[who], sizeof sh->why[who], fmt, ap);
		va_end(ap);
		sh->verdict[who] = -1;
	}
}

/* A member of the tree below the parent: count until SIGTERM, then check and exit. */
static void __attribute__((noreturn)) member(int who, pid_t want_ppid, int own_group)
{
	pids[who] = getpid();
	while (!victim_stop) {
		sh->ticks[who]++;
		if (who == 1) { /* child 1 reads what the parent writes, one byte per tick */
			char c;
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
			ssize_t n = read(pipefd[0], &c, 1);
			report(who, n == 1 || (n < 0 && (errno == EINTR || errno == EAGAIN)), "read from the pipe: %zd %s", n, err());
		} else {
			victim_nap_ms(1);
		}
	}
	report(who, getppid() == want_ppid, "pid %d: parent is %d, expected %d", getpid(), getppid(), want_ppid);
	report(who, (getpgrp() == getpid()) == own_group, "pid %d: process group %d", getpid(), getpgrp());
	report(who, getsid(0) == getsid(pids[0]), "pid %d: session %d, parent's %d", getpid(), getsid(0), getsid(pids[0]));
	if (sh->verdict[who] == 0)
		sh->verdict[who] = 1;
	_exit(0);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	sh = mmap(NULL, VPAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	SETUP(sh != MAP_FAILED);
	pids[0] = getpid();
	shared_fd = open(victim_file("shared.txt"), O_RDWR | O_CREAT | O_TRUNC, 0644);
	SETUP(shared_fd >= 0);
	SETUP(write(shared_fd, "0123456789", 10) == 10);
	SETUP(pipe2(pipefd, O_NONBLOCK) == 0);

	pid_t c1 = fork();
	SETUP(c1 >= 0);
	if (c1 == 0) {
		close(pipefd[1]);
		pid_t me = getpid();
		if (fork() == 0)
			member(3, me, 0);
		member(1, pids[0], 0);
	}
	pid_t c2 = fork();
	SETUP(c2 >= 0);
	if (c2 == 0) {
		setpgid(0, 0);
		member(2, pids[0], 1);
	}
	pids[1] = c1;
	pids[2] = c2;
	pid_t exited = fork();
	SETUP(exited >= 0);
	if (exited == 0)
		_exit(7);
	pid_t killed = fork();
	SETUP(killed >= 0);
	if (killed == 0) {
		signal(SIGUSR1, SIG_DFL);
		for (;;)
			pause();
	}
	SETUP(kill(killed, SIGUSR1) == 0);
	siginfo_t si;
	SETUP(waitid(P_PID, exited, &si, WEXITED | WNOWAIT) == 0 && waitid(P_PID, killed, &si, WEXITED | WNOWAIT) == 0);
	close(pipefd[0]);
	/* wait until everyone runs, then move the shared offset from here: the others see it */
	for (int i = 0; i < 2000 && !(sh->ticks[1] && sh->ticks[2] && sh->ticks[3]); i++)
		victim_nap_ms(1);
	SETUP(sh->ticks[1] && sh->ticks[2] && sh->ticks[3]);
	SETUP(lseek(shared_fd, 4, SEEK_SET) == 4);
	victim_ready();

	uint64_t seen[4];
	for (int i = 1; i < 4; i++)
		seen[i] = sh->ticks[i];
	while (!victim_stop) {
		if (write(pipefd[1], "t", 1) < 0 && errno != EAGAIN && errno != EINTR)
			fail("write to the pipe: %s", err());
		victim_nap_ms(1);
	}
	victim_begin_check();
	for (int i = 1; i < 4; i++)
		CHECK(sh->ticks[i] > seen[i], "member %d stopped counting after restore", i);
	CHECK(lseek(shared_fd, 0, SEEK_CUR) == 4, "shared offset is %ld, expected 4", (long)lseek(shared_fd, 0, SEEK_CUR));
	/* end the tree from the bottom: the grandchild judges while child 1 is still its parent */
	kill(pids[3], SIGTERM);
	for (int i = 0; i < 3000 && sh->verdict[3] == 0; i++)
		victim_nap_ms(1);
	kill(pids[1], SIGTERM);
	kill(pids[2], SIGTERM);
	for (int i = 1; i <= 2; i++) {
		int status;
		pid_t r = waitpid(pids[i], &status, 0);
		CHECK(r == pids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d (pid %d) did not exit cleanly: %d %x", i, pids[i], r, status);
	}
	int status;
	CHECK(waitpid(exited, &status, WNOHANG) == exited && WIFEXITED(status) && WEXITSTATUS(status) == 7,
	      "zombie %d: status %x, expected exit code 7", exited, status);
	CHECK(waitpid(killed, &status, WNOHANG) == killed && WIFSIGNALED(status) && WTERMSIG(status) == SIGUSR1,
	      "zombie %d: status %x, expected death by SIGUSR1", killed, status);
	for (int i = 1; i < 4; i++)
		CHECK(sh->verdict[i] == 1, "member %d: %s", i, sh->verdict[i] ? sh->why[i] : "no verdict");
	close(pipefd[1]);
	close(shared_fd);
	victim_list_fds(victim_fds);
	victim_finish();
}
