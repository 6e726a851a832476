/*
 * lazy_sweep [MIB]: MIB MiB (default 64) of private anonymous memory, a distinct pattern per
 * page, plus a heap array of per-page counters. The wait loop never stops sweeping: each tick
 * checks 256 pages against their pattern and bumps their counters, so after a lazy restore it
 * keeps faulting on pages that have not arrived yet. A page that reads wrong is reported at
 * once (RESULTFILE gets the FAIL line and the victim exits): a lazy restore must never let it
 * run on missing memory.
 */
#include "victim.h"

static unsigned char *area;
static uint32_t *counts; /* heap: expected counter of each page */
static size_t npages, next_page;

/* The first 8 bytes of a page hold its counter; the rest is the pattern. */
static long page_mismatch(size_t page)
{
	unsigned char *p = area + page * VPAGE;
	if (*(volatile uint64_t *)p != counts[page])
		return 0;
	long off = pattern_mismatch(p + 8, VPAGE - 8, page);
	return off < 0 ? -1 : off + 8;
}

static void fail_now(size_t page, long off)
{
	char text[256];
	snprintf(text, sizeof text, "FAIL: page %zu of %zu differs at byte %ld (counter %llu, expected %u)\n", page, npages, off,
		 (unsigned long long)*(volatile uint64_t *)(area + page * VPAGE), counts[page]);
	victim_write_text(victim_result, text);
	_exit(1);
}

static void tick(void)
{
	for (int i = 0; i < 256; i++, next_page = (next_page + 1) % npages) {
		long off = page_mismatch(next_page);
		if (off >= 0)
			fail_now(next_page, off);
		*(uint64_t *)(area + next_page * VPAGE) = ++counts[next_page];
	}
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 64;
	SETUP(mib > 0 && mib <= 65536);
	npages = mib * 256;
	area = mmap(NULL, npages * VPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	SETUP(area != MAP_FAILED);
	counts = calloc(npages, sizeof *counts);
	SETUP(counts != NULL);
	for (size_t page = 0; page < npages; page++) {
		fill_pattern(area + page * VPAGE + 8, VPAGE - 8, page);
		*(uint64_t *)(area + page * VPAGE) = 0;
	}
	victim_ready();

	victim_wait(tick);

	for (size_t page = 0; page < npages; page++) {
		long off = page_mismatch(page);
		CHECK(off < 0, "page %zu differs at byte %ld", page, off);
		if (failed())
			break;
	}
	victim_finish();
}
