/*
 * threads: four threads, each with its own TLS value, name, signal mask and TID, each parked in a
 * different blocking call (futex wait, read on a pipe, nanosleep, a spinning counter). After
 * restore every thread must still be itself, blocked calls must carry on, and pthread_join must
 * work (it needs each thread's clear-child-tid address back).
 */
#include "victim.h"
#include <linux/futex.h>
#include <pthread.h>
#include <sys/prctl.h>

#define NTHREADS 4
static __thread uint64_t tls_value;
static pid_t tids[NTHREADS];
static volatile uint64_t spins;
static volatile uint32_t futex_word;
static int pipefd[2];
static pthread_barrier_t started;

struct thread_check { char name[16]; uint64_t tls; pid_t tid; sigset_t mask; };
static struct thread_check seen[NTHREADS];

static void record(int i)
{
	char name[16];
	prctl(PR_GET_NAME, name);
	memcpy(seen[i].name, name, 16);
	seen[i].tls = tls_value;
	seen[i].tid = gettid();
	pthread_sigmask(SIG_SETMASK, NULL, &seen[i].mask);
}

static void *worker(void *arg)
{
	int i = (int)(long)arg;
	char name[16];
	snprintf(name, sizeof name, "ferry-w%d", i);
	prctl(PR_SET_NAME, name);
	tls_value = 0x1000 + i * 77;
	tids[i] = gettid();
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1 + (i % 2));
	sigaddset(&mask, SIGTERM); /* only the main thread takes SIGTERM */
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	pthread_barrier_wait(&started);
	switch (i) {
	case 0: /* futex wait until the main thread says stop */
		while (futex_word == 0) {
			long r = syscall(SYS_futex, &futex_word, FUTEX_WAIT, 0, NULL, NULL, 0);
			if (r != 0 && errno != EAGAIN && errno != EINTR)
				fail("thread 0: futex wait: %s", err());
		}
		break;
	case 1: { /* read on an empty pipe until the main thread writes */
		char c;
		ssize_t n;
		while ((n = read(pipefd[0], &c, 1)) < 0 && errno == EINTR)
			;
		if (n != 1 || c != 'x')
			fail("thread 1: read returned %zd (%s), expected the byte 'x'", n, n < 0 ? err() : "");
		break;
	}
	case 2: /* nanosleep in a loop */
		while (futex_word == 0) {
			struct timespec ts = { 0, 20 * 1000000L };
			if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
				fail("thread 2: nanosleep: %s", err());
		}
		break;
	case 3: /* busy */
		while (futex_word == 0)
			spins++;
		break;
	}
	record(i);
	return (void *)(long)(0x700 + i);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	pthread_t th[NTHREADS];
	SETUP(pipe(pipefd) == 0);
	SETUP(pthread_barrier_init(&started, NULL, NTHREADS + 1) == 0);
	for (long i = 0; i < NTHREADS; i++)
		SETUP(pthread_create(&th[i], NULL, worker, (void *)i) == 0);
	pthread_barrier_wait(&started);
	tls_value = 0xabc;
	victim_ready();

	uint64_t before = spins;
	victim_wait(NULL);
	CHECK(spins > before, "the busy thread did not run after restore (spins %llu)", (unsigned long long)spins);
	char path[64], comm[32];
	for (int i = 0; i < NTHREADS; i++) {
		snprintf(path, sizeof path, "/proc/self/task/%d/comm", tids[i]);
		CHECK(read_text(path, comm, sizeof comm) > 0, "thread %d (tid %d) is gone: %s", i, tids[i], err());
	}
	futex_word = 1;
	syscall(SYS_futex, &futex_word, FUTEX_WAKE, 1, NULL, NULL, 0);
	CHECK(write(pipefd[1], "x", 1) == 1, "write to the pipe: %s", err());
	for (int i = 0; i < NTHREADS; i++) {
		void *ret;
		CHECK(pthread_join(th[i], &ret) == 0, "pthread_join(%d) failed", i);
		CHECK(ret == (void *)(long)(0x700 + i), "thread %d returned %p", i, ret);
		char want[16];
		snprintf(want, sizeof want, "ferry-w%d", i);
		CHECK(strcmp(seen[i].name, want) == 0, "thread %d is named '%s', expected '%s'", i, seen[i].name, want);
		CHECK(seen[i].tls == 0x1000 + (uint64_t)i * 77, "thread %d TLS value is %llx", i, (unsigned long long)seen[i].tls);
		CHECK(seen[i].tid == tids[i], "thread %d has TID %d, had %d", i, seen[i].tid, tids[i]);
		CHECK(sigismember(&seen[i].mask, SIGUSR1 + (i % 2)) && sigismember(&seen[i].mask, SIGTERM),
		      "thread %d lost its signal mask", i);
	}
	CHECK(tls_value == 0xabc, "main thread TLS value is %llx", (unsigned long long)tls_value);
	close(pipefd[0]);
	close(pipefd[1]);
	victim_list_fds(victim_fds); /* the pipe was closed on purpose */
	victim_finish();
}
