/*
 * migrate_hot [COLD_MIB] [HOT_MIB] [PAGES_PER_TICK] [compressible]: memory that keeps being written
 * while it is migrated. A cold set (default 32 MiB) gets a distinct pattern per page (random-looking,
 * or with "compressible" one that repeats every 128 bytes, as text-like data) and is never written
 * again; a hot set (default 4 MiB) is rewritten all the time: each tick (about 1 ms) checks and
 * bumps the counters of the next PAGES_PER_TICK (default 64) hot pages, whose expected values
 * live in a heap array (written as often). Pre-copy rounds therefore keep finding the hot set
 * dirty, and a page sent before its last write but not sent again reads wrong: the victim says
 * so at once (FAIL in RESULTFILE and exit). On SIGTERM every page of both sets is checked.
 * SIGUSR1 gives the first MiB of the cold set back to the kernel (MADV_DONTNEED), which must
 * then read as zeros, and writes a new pattern over the second MiB.
 */
#include "victim.h"

static unsigned char *cold, *hot;
static uint32_t *counts; /* heap: expected counter of each hot page */
static size_t cold_pages, hot_pages, per_tick = 64, next_page;
static volatile sig_atomic_t zap_asked;
static char victim_zapped_file[PATH_MAX + 16];
static int zapped;
static int compressible;

static void on_usr1(int sig)
{
	(void)sig;
	zap_asked = 1;
}

/* The first 256 cold pages become zeros, the next 256 get the pattern of seed page + 777. */
static uint64_t cold_seed(size_t page)
{
	return zapped && page >= 256 && page < 512 ? page + 777 : page;
}

/* The compressible pattern: 16 words that depend on the page, over and over. */
static uint64_t cold_word(size_t page, size_t i)
{
	return cold_seed(page) * 0x100000001b3ULL + (i & 15);
}

static void cold_fill(size_t page)
{
	uint64_t *w = (uint64_t *)(cold + page * VPAGE);
	if (!compressible) {
		fill_pattern(w, VPAGE, cold_seed(page));
		return;
	}
	for (size_t i = 0; i < VPAGE / 8; i++)
		w[i] = cold_word(page, i);
}

static long cold_mismatch(size_t page)
{
	unsigned char *p = cold + page * VPAGE;
	if (zapped && page < 256) {
		for (size_t i = 0; i < VPAGE; i++)
			if (p[i])
				return (long)i;
		return -1;
	}
	if (!compressible)
		return pattern_mismatch(p, VPAGE, cold_seed(page));
	const volatile uint64_t *w = (const uint64_t *)p;
	for (size_t i = 0; i < VPAGE / 8; i++)
		if (w[i] != cold_word(page, i))
			return (long)(i * 8);
	return -1;
}

static long hot_mismatch(size_t page)
{
	unsigned char *p = hot + page * VPAGE;
	if (*(volatile uint64_t *)p != counts[page])
		return 0;
	long off = pattern_mismatch(p + 8, VPAGE - 8, page + 1000000);
	return off < 0 ? -1 : off + 8;
}

static void tick(void)
{
	if (zap_asked && !zapped && cold_pages >= 512) {
		if (madvise(cold, 256 * VPAGE, MADV_DONTNEED))
			fail("madvise: %s", err());
		zapped = 1;
		for (size_t page = 256; page < 512; page++)
			cold_fill(page);
		victim_write_text(victim_zapped_file, "zapped\n");
	}
	for (size_t i = 0; i < per_tick; i++, next_page = (next_page + 1) % hot_pages) {
		long off = hot_mismatch(next_page);
		if (off >= 0) {
			char text[256];
			snprintf(text, sizeof text, "FAIL: hot page %zu differs at byte %ld (counter %llu, expected %u)\n", next_page, off,
				 (unsigned long long)*(volatile uint64_t *)(hot + next_page * VPAGE), counts[next_page]);
			victim_write_text(victim_result, text);
			_exit(1);
		}
		*(uint64_t *)(hot + next_page * VPAGE) = ++counts[next_page];
	}
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	snprintf(victim_zapped_file, sizeof victim_zapped_file, "%s.zapped", victim_result);
	SETUP(signal(SIGUSR1, on_usr1) != SIG_ERR);
	size_t cold_mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 32;
	size_t hot_mib = argc > 3 ? strtoul(argv[3], NULL, 10) : 4;
	if (argc > 4)
		per_tick = strtoul(argv[4], NULL, 10);
	compressible = argc > 5 && strcmp(argv[5], "compressible") == 0;
	SETUP(cold_mib <= 65536 && hot_mib > 0 && hot_mib <= 4096 && per_tick > 0);
	cold_pages = cold_mib * 256;
	hot_pages = hot_mib * 256;
	if (cold_pages) {
		cold = mmap(NULL, cold_pages * VPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		SETUP(cold != MAP_FAILED);
	}
	hot = mmap(NULL, hot_pages * VPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	SETUP(hot != MAP_FAILED);
	counts = calloc(hot_pages, sizeof *counts);
	SETUP(counts != NULL);
	for (size_t page = 0; page < cold_pages; page++)
		cold_fill(page);
	for (size_t page = 0; page < hot_pages; page++) {
		fill_pattern(hot + page * VPAGE + 8, VPAGE - 8, page + 1000000);
		*(uint64_t *)(hot + page * VPAGE) = 0;
	}
	victim_ready();

	victim_wait(tick);

	for (size_t page = 0; page < cold_pages && !failed(); page++) {
		long off = cold_mismatch(page);
		CHECK(off < 0, "cold page %zu differs at byte %ld", page, off);
	}
	for (size_t page = 0; page < hot_pages && !failed(); page++) {
		long off = hot_mismatch(page);
		CHECK(off < 0, "hot page %zu differs at byte %ld", page, off);
	}
	victim_finish();
}
