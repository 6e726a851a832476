/*
 * sparse: 1 GiB of private anonymous memory (MAP_NORESERVE, MADV_NOHUGEPAGE)
 * in which only one page every 64 MiB was written. After restore the written
 * pages hold their patterns, untouched pages read zero, the mapping still
 * covers the whole GiB with its "nh" flag, and it still uses only a few pages
 * of RAM (Rss): a restore must not fill the holes.
 */
#include "victim.h"

#define SIZE (1UL << 30)
#define STRIDE (64UL << 20)
#define OFFSET (5 * VPAGE)

static unsigned char *area;

static void check_touched(void)
{
	for (unsigned long off = OFFSET; off < SIZE; off += STRIDE)
		CHECK(pattern_mismatch(area + off, VPAGE, off / STRIDE) < 0, "written page at +%lu MiB changed", off >> 20);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	area = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	SETUP(area != MAP_FAILED);
	SETUP(madvise(area, SIZE, MADV_NOHUGEPAGE) == 0);
	for (unsigned long off = OFFSET; off < SIZE; off += STRIDE)
		fill_pattern(area + off, VPAGE, off / STRIDE);
	victim_ready();

	victim_wait(check_touched);

	check_touched();
	/* a sample of never-written pages, spread over the whole range */
	for (unsigned long off = 0; off < SIZE; off += 997 * VPAGE)
		if ((off - OFFSET) % STRIDE != 0)
			CHECK(zero_mismatch(area + off, VPAGE) < 0, "never-written page at +%#lx is not zero", off);
	struct vma v;
	char value[256];
	if (find_vma(area, &v) != 0) {
		fail("the 1 GiB mapping at %p is gone", (void *)area);
	} else {
		CHECK(v.start <= (unsigned long)area && v.end >= (unsigned long)area + SIZE && strcmp(v.perms, "rw-p") == 0,
		      "the mapping is %#lx-%#lx %s, expected to cover %p + 1 GiB rw-p", v.start, v.end, v.perms,
		      (void *)area);
	}
	if (smaps_field(area, "VmFlags", value, sizeof value) != 0)
		fail("no VmFlags for the mapping: %s", err());
	else
		CHECK(has_word(value, "nh"), "the mapping lost MADV_NOHUGEPAGE (VmFlags: %s)", value);
	if (smaps_field(area, "Rss", value, sizeof value) != 0)
		fail("no Rss for the mapping: %s", err());
	else
		CHECK(atol(value) <= 1024, "the mapping uses %s of RAM, expected about %lu kB", value, (SIZE / STRIDE) * 4);
	victim_finish();
}
