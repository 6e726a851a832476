/*
 * stack: 1500 nested calls each keep a 1 KiB frame filled with a pattern; the
 * deepest one waits. The frames are checked on the way back up after restore.
 * At the bottom there is also a MAP_GROWSDOWN mapping that already grew by 16
 * pages: it must keep its content and its "gd" flag and still grow on a touch
 * below it. The [stack] mapping must still be [stack] with "gd" too.
 */
#include <setjmp.h>
#include "victim.h"

#define DEPTH 1500
#define FRAME_WORDS 128
#define GD_PAGES 16  /* mapped with mmap */
#define GD_GROWN 16  /* grown into by touching below */

static unsigned char *gd_top;  /* first page mmap gave */
static unsigned char *gd_low;  /* lowest page after growing */
static sigjmp_buf segv_jump;

static void on_segv(int sig) { siglongjmp(segv_jump, sig); }

/* Touches ADDR; 0 if it worked, -1 if it raised SIGSEGV. */
static int touch(volatile unsigned char *addr, unsigned char value)
{
	if (sigsetjmp(segv_jump, 1))
		return -1;
	*addr = value;
	return *addr == value ? 0 : -1;
}

static void make_growsdown(void)
{
	/* keep 4 MiB free below it so that growing never comes near another mapping */
	unsigned char *hole = mmap(NULL, 4UL << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	SETUP(hole != MAP_FAILED);
	SETUP(munmap(hole, 4UL << 20) == 0);
	gd_top = mmap(hole + (4UL << 20) - GD_PAGES * VPAGE, GD_PAGES * VPAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED_NOREPLACE, -1, 0);
	SETUP(gd_top != MAP_FAILED);
	for (int i = 1; i <= GD_GROWN; i++)
		SETUP(touch(gd_top - i * VPAGE, 1) == 0);
	gd_low = gd_top - GD_GROWN * VPAGE;
	fill_pattern(gd_low, (GD_PAGES + GD_GROWN) * VPAGE, 66);
}

static void check_growsdown(void)
{
	struct vma v;
	char flags[256];
	CHECK(pattern_mismatch(gd_low, (GD_PAGES + GD_GROWN) * VPAGE, 66) < 0, "growsdown mapping content changed");
	if (find_vma(gd_low, &v) != 0) {
		fail("growsdown mapping at %p is gone", (void *)gd_low);
		return;
	}
	CHECK(v.start == (unsigned long)gd_low, "growsdown mapping starts at %#lx, expected %p", v.start, (void *)gd_low);
	if (smaps_field(gd_low, "VmFlags", flags, sizeof flags) != 0)
		fail("no VmFlags for the growsdown mapping: %s", err());
	else
		CHECK(has_word(flags, "gd"), "growsdown mapping lost its gd flag (VmFlags: %s)", flags);
	CHECK(touch(gd_low - 1, 9) == 0, "touching below the growsdown mapping raised SIGSEGV: it no longer grows");
}

static void check_main_stack(void *local)
{
	struct vma v;
	char flags[256];
	if (find_vma(local, &v) != 0) {
		fail("the stack address %p is not mapped", local);
		return;
	}
	CHECK(strcmp(v.path, "[stack]") == 0, "the stack mapping is named '%s', expected [stack]", v.path);
	if (smaps_field(local, "VmFlags", flags, sizeof flags) == 0)
		CHECK(has_word(flags, "gd"), "[stack] lost its gd flag (VmFlags: %s)", flags);
	else
		fail("no VmFlags for [stack]: %s", err());
}

static void at_the_bottom(void)
{
	int local = 0;
	make_growsdown();
	victim_ready();
	victim_wait(NULL);
	check_main_stack(&local);
	check_growsdown();
}

static void descend(int depth)
{
	volatile uint64_t frame[FRAME_WORDS];
	for (int i = 0; i < FRAME_WORDS; i++)
		frame[i] = mix64(depth * 1000 + i);
	if (depth < DEPTH)
		descend(depth + 1);
	else
		at_the_bottom();
	for (int i = 0; i < FRAME_WORDS; i++)
		if (frame[i] != mix64(depth * 1000 + i)) {
			fail("stack frame at depth %d word %d changed", depth, i);
			break;
		}
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_segv;
	SETUP(sigaction(SIGSEGV, &sa, NULL) == 0);
	descend(0);
	victim_finish();
}
