/*
 * vdso: clock_gettime, gettimeofday and time() go through the vDSO. The wait
 * loop checks they never go backwards and agree with each other. After restore
 * the [vdso] mapping is where AT_SYSINFO_EHDR says with the same code, and the
 * vDSO's clocks still move and agree with the real system calls (a vvar page
 * restored as a plain copy would freeze them).
 */
#include <sys/auxv.h>
#include <sys/time.h>
#include "victim.h"

static const clockid_t clocks[] = { CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_MONOTONIC_COARSE,
				    CLOCK_MONOTONIC_RAW };
#define NCLOCKS (sizeof clocks / sizeof clocks[0])
static int64_t last[NCLOCKS];
static unsigned long vdso_base, vdso_end;
static uint64_t vdso_hash;

static void tick(void)
{
	for (size_t i = 0; i < NCLOCKS; i++) {
		int64_t t = now_ns(clocks[i]);
		if (i != 0) /* CLOCK_REALTIME may be set by someone */
			CHECK(t >= last[i], "clock %d went backwards: %lld < %lld", (int)clocks[i], (long long)t,
			      (long long)last[i]);
		last[i] = t;
	}
	struct timeval tv;
	CHECK(gettimeofday(&tv, NULL) == 0, "gettimeofday: %s", err());
	int64_t tod = tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL;
	CHECK(llabs(tod - last[0]) < 50000000, "gettimeofday and CLOCK_REALTIME differ by %lld ns",
	      (long long)(tod - last[0]));
	time_t t = time(NULL);
	CHECK(llabs((long long)t - tv.tv_sec) <= 1, "time() is %lld, gettimeofday says %lld", (long long)t,
	      (long long)tv.tv_sec);
}

/* The vDSO and the system call agree on CLOCK. */
static void compare_with_syscall(clockid_t clock)
{
	struct timespec by_vdso, by_syscall;
	CHECK(clock_gettime(clock, &by_vdso) == 0, "clock_gettime: %s", err());
	CHECK(syscall(SYS_clock_gettime, clock, &by_syscall) == 0, "syscall clock_gettime: %s", err());
	int64_t diff = ts_ns(by_syscall) - ts_ns(by_vdso);
	CHECK(diff >= 0 && diff < 20000000, "clock %d: vDSO says %lld ns, the syscall %lld ns later", (int)clock,
	      (long long)ts_ns(by_vdso), (long long)diff);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	vdso_base = getauxval(AT_SYSINFO_EHDR);
	SETUP(vdso_base != 0);
	struct vma v;
	SETUP(find_vma((void *)vdso_base, &v) == 0 && strcmp(v.path, "[vdso]") == 0);
	vdso_end = v.end;
	vdso_hash = fnv1a((void *)vdso_base, vdso_end - vdso_base);
	tick();
	victim_ready();

	victim_wait(tick);

	tick();
	if (find_vma((void *)vdso_base, &v) != 0)
		fail("nothing is mapped at AT_SYSINFO_EHDR %#lx", vdso_base);
	else
		CHECK(strcmp(v.path, "[vdso]") == 0 && v.start == vdso_base && v.end == vdso_end,
		      "at AT_SYSINFO_EHDR: %#lx-%#lx '%s', expected [vdso] %#lx-%#lx", v.start, v.end, v.path,
		      vdso_base, vdso_end);
	CHECK(fnv1a((void *)vdso_base, vdso_end - vdso_base) == vdso_hash, "the vDSO code changed");
	compare_with_syscall(CLOCK_MONOTONIC);
	compare_with_syscall(CLOCK_REALTIME);
	compare_with_syscall(CLOCK_BOOTTIME);
	int64_t before = now_ns(CLOCK_MONOTONIC);
	victim_nap_ms(20);
	int64_t slept = now_ns(CLOCK_MONOTONIC) - before;
	CHECK(slept >= 19000000 && slept < 5000000000LL, "a 20 ms sleep took %lld ns by the vDSO clock", (long long)slept);
	victim_finish();
}
