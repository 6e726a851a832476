/*
 * rlimits: the soft limits of RLIMIT_NOFILE, RLIMIT_STACK and RLIMIT_CORE are
 * lowered, and the hard limit of RLIMIT_NOFILE too. After restore all 16
 * resource limits equal what the process recorded.
 */
#include <sys/resource.h>
#include "victim.h"

static struct rlimit recorded[RLIMIT_NLIMITS];

static void lower(int resource, rlim_t soft, rlim_t hard)
{
	struct rlimit lim;
	SETUP(getrlimit(resource, &lim) == 0);
	if (hard < lim.rlim_max)
		lim.rlim_max = hard;
	lim.rlim_cur = soft < lim.rlim_max ? soft : lim.rlim_max;
	SETUP(setrlimit(resource, &lim) == 0);
}

static void tick(void)
{
	for (int r = 0; r < RLIMIT_NLIMITS; r++) {
		struct rlimit now;
		if (getrlimit(r, &now) != 0) {
			fail("getrlimit(%d): %s", r, err());
			continue;
		}
		CHECK(now.rlim_cur == recorded[r].rlim_cur && now.rlim_max == recorded[r].rlim_max,
		      "rlimit %d is %llu/%llu, expected %llu/%llu", r, (unsigned long long)now.rlim_cur,
		      (unsigned long long)now.rlim_max, (unsigned long long)recorded[r].rlim_cur,
		      (unsigned long long)recorded[r].rlim_max);
	}
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	lower(RLIMIT_NOFILE, 321, 4321);
	lower(RLIMIT_STACK, 6 << 20, RLIM_INFINITY);
	lower(RLIMIT_CORE, 12345 * 1024, RLIM_INFINITY);
	for (int r = 0; r < RLIMIT_NLIMITS; r++)
		SETUP(getrlimit(r, &recorded[r]) == 0);
	victim_ready();

	victim_wait(tick);

	tick();
	victim_finish();
}
