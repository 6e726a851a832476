/*
 * personality: the process adds ADDR_NO_RANDOMIZE to its personality. After
 * restore personality() and /proc/self/personality report the same value.
 */
#include <sys/personality.h>
#include "victim.h"

static int recorded;

static void tick(void)
{
	int now = personality(0xffffffff);
	CHECK(now == recorded, "personality is %#x, expected %#x", now, recorded);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	int before = personality(0xffffffff);
	SETUP(before != -1);
	SETUP(personality(before | ADDR_NO_RANDOMIZE) != -1);
	recorded = personality(0xffffffff);
	SETUP(recorded == (before | ADDR_NO_RANDOMIZE));
	victim_ready();

	victim_wait(tick);

	tick();
	char text[32];
	CHECK(read_text("/proc/self/personality", text, sizeof text) > 0 && strtol(text, NULL, 16) == recorded,
	      "/proc/self/personality is '%s', expected %08x", text, recorded);
	victim_finish();
}
