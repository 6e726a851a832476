/*
 * anon_private: 8 MiB of private anonymous memory in which every page is
 * different. Every 5th page is never touched (it must stay zero and need not be
 * dumped), every 7th is written with zeros; the rest hold a per-page pattern.
 * The wait loop keeps re-reading the whole area, a slice per tick.
 */
#include "victim.h"

#define NPAGES 2048
enum kind { UNTOUCHED, ZEROED, PATTERN };

static unsigned char *area;
static uint64_t checksum;
static size_t next_page;

static enum kind kind_of(size_t page)
{
	if (page % 5 == 0)
		return UNTOUCHED;
	if (page % 7 == 0)
		return ZEROED;
	return PATTERN;
}

static void check_page(size_t page)
{
	unsigned char *p = area + page * VPAGE;
	long off = kind_of(page) == PATTERN ? pattern_mismatch(p, VPAGE, page) : zero_mismatch(p, VPAGE);
	CHECK(off < 0, "page %zu (%s) differs at byte %ld", page,
	      kind_of(page) == PATTERN ? "pattern" : "zero", off);
}

static void tick(void)
{
	for (int i = 0; i < 64; i++, next_page = (next_page + 1) % NPAGES)
		check_page(next_page);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	area = mmap(NULL, NPAGES * VPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	SETUP(area != MAP_FAILED);
	for (size_t page = 0; page < NPAGES; page++) {
		if (kind_of(page) == PATTERN)
			fill_pattern(area + page * VPAGE, VPAGE, page);
		else if (kind_of(page) == ZEROED)
			memset(area + page * VPAGE, 0, VPAGE);
	}
	checksum = fnv1a(area, NPAGES * VPAGE);
	victim_ready();

	victim_wait(tick);

	for (size_t page = 0; page < NPAGES; page++)
		check_page(page);
	CHECK(fnv1a(area, NPAGES * VPAGE) == checksum, "checksum of the 8 MiB area changed");
	struct vma v;
	if (find_vma(area, &v) != 0)
		fail("no mapping at %p in /proc/self/maps", (void *)area);
	else
		CHECK(strcmp(v.perms, "rw-p") == 0 && v.path[0] == 0,
		      "mapping at %p is '%s %s', expected anonymous rw-p", (void *)area, v.perms, v.path);
	/* still an ordinary writable private mapping */
	area[5 * VPAGE] = 0x5a;
	CHECK(area[5 * VPAGE] == 0x5a, "write to an untouched page did not stick");
	victim_finish();
}
