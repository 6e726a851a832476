/*
 * rseq: glibc registered an rseq area for the thread at startup. After
 * restore the registration must still be active with the same area, length and
 * signature (registering it again fails with EBUSY; 0 would mean it was not
 * registered, EINVAL/EPERM that it was registered differently), and the kernel
 * must keep cpu_id up to date when the thread is moved between CPUs.
 */
#include <sched.h>
#include <sys/rseq.h>
#include "victim.h"

#define RSEQ_SIG 0x53053053

static struct rseq *area;
static unsigned registered_len;

static long rseq_register(unsigned len)
{
	return syscall(SYS_rseq, area, len, 0, RSEQ_SIG);
}

static int current_cpu(void)
{
	unsigned cpu = 0;
	if (syscall(SYS_getcpu, &cpu, NULL, NULL) != 0) {
		fail("getcpu: %s", err());
		return -1;
	}
	return (int)cpu;
}

static void tick(void)
{
	int cpu = (int)((volatile struct rseq *)area)->cpu_id;
	CHECK(cpu >= 0, "rseq cpu_id is %d", cpu);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	SETUP(__rseq_size > 0); /* glibc registered rseq (not disabled by a tunable) */
	void *tp;
	__asm__("mov %%fs:0, %0" : "=r"(tp));
	area = (struct rseq *)((char *)tp + __rseq_offset);
	/* find the length glibc registered with: only the exact one gives EBUSY */
	unsigned lens[] = { __rseq_size, 32, 20 };
	for (size_t i = 0; i < sizeof lens / sizeof lens[0] && !registered_len; i++)
		if (rseq_register(lens[i]) == -1 && errno == EBUSY)
			registered_len = lens[i];
	SETUP(registered_len != 0);
	SETUP((int)area->cpu_id == current_cpu());
	victim_ready();

	victim_wait(tick);

	long rc = rseq_register(registered_len);
	if (rc == 0)
		fail("rseq(area %p, len %u) succeeded: the thread had no rseq registered", (void *)area, registered_len);
	else
		CHECK(errno == EBUSY, "rseq(area %p, len %u, sig %#x) gave %s, expected EBUSY (same registration)",
		      (void *)area, registered_len, RSEQ_SIG, err());
	tick();
	/* move to each allowed CPU: the kernel must update cpu_id in our area */
	cpu_set_t allowed, one;
	if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
		fail("sched_getaffinity: %s", err());
	} else {
		for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
			if (!CPU_ISSET(cpu, &allowed))
				continue;
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			if (sched_setaffinity(0, sizeof one, &one) != 0) {
				fail("sched_setaffinity(cpu %d): %s", cpu, err());
				break;
			}
			sched_yield();
			int seen = (int)((volatile struct rseq *)area)->cpu_id;
			int real = current_cpu();
			CHECK(real == cpu && seen == cpu, "pinned to cpu %d: getcpu says %d, rseq cpu_id says %d", cpu,
			      real, seen);
			CHECK((int)area->cpu_id_start == cpu, "pinned to cpu %d: rseq cpu_id_start is %u", cpu,
			      area->cpu_id_start);
		}
		CHECK(sched_setaffinity(0, sizeof allowed, &allowed) == 0, "restoring the affinity: %s", err());
	}
	victim_finish();
}
