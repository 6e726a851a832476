/*
 * heap: the program break is moved up by 1 MiB + 3 pages with sbrk() and the
 * new heap is filled with a pattern. After restore sbrk(0) is where it was,
 * the pattern is intact, /proc/self/maps calls it [heap], and the break can
 * still grow and shrink. (No malloc after setup: it could move the break.)
 */
#include "victim.h"

#define GROWTH ((1UL << 20) + 3 * VPAGE)

static unsigned char *heap;
static void *brk_end;

static void tick(void)
{
	CHECK(pattern_mismatch(heap, GROWTH, 8) < 0, "heap pattern changed");
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	heap = sbrk(GROWTH);
	SETUP(heap != (void *)-1);
	fill_pattern(heap, GROWTH, 8);
	brk_end = sbrk(0);
	SETUP(brk_end == heap + GROWTH);
	victim_ready();

	victim_wait(tick);

	void *now = sbrk(0);
	CHECK(now == brk_end, "sbrk(0) is %p, expected %p", now, brk_end);
	tick();
	struct vma v;
	if (find_vma(heap, &v) != 0)
		fail("heap at %p is not in /proc/self/maps", (void *)heap);
	else
		CHECK(strcmp(v.path, "[heap]") == 0 && strcmp(v.perms, "rw-p") == 0,
		      "heap mapping is '%s %s', expected 'rw-p [heap]'", v.perms, v.path);
	unsigned char *more = sbrk(2 * VPAGE);
	if (more == (void *)-1) {
		fail("sbrk(+2 pages) after restore: %s", err());
	} else {
		CHECK(more == brk_end, "sbrk(+2 pages) returned %p, expected the old break %p", (void *)more, brk_end);
		CHECK(zero_mismatch(more, 2 * VPAGE) < 0, "memory the break just grew into is not zero");
		memset(more, 0x77, 2 * VPAGE);
		CHECK(sbrk(-2 * (long)VPAGE) != (void *)-1, "sbrk(-2 pages): %s", err());
		CHECK(sbrk(0) == brk_end, "break is %p after growing and shrinking, expected %p", sbrk(0), brk_end);
	}
	victim_finish();
}
