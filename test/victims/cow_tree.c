/*
 * cow_tree: private memory still copy-on-write shared after fork. The parent writes a pattern
 * over 32 MiB of private anonymous memory and forks three children; child 1 forks a grandchild.
 * Each of them then writes a page of its own over the parent's data, zeroes another, drops a
 * third with MADV_DONTNEED and writes a page the parent never had; the parent and child 1 also
 * write a page after their forks (which their children must not see). Four pages in the middle
 * are read-only (the area is three mappings side by side). After restore each
 * process checks every page of the area against what it alone should hold, and reports into a
 * shared page; the parent ends the tree and judges. (The test measures the sharing.)
 */
#include "victim.h"
#include <sys/wait.h>

#define AREA_PAGES 8192UL                  /* 32 MiB */
#define DATA_PAGES (AREA_PAGES - 16)       /* what the parent writes; the tail stays untouched */
#define READONLY_PAGE 100UL               /* and 3 more: read-only in all */
#define MEMBERS 5                          /* parent, children 1-3, grandchild 4 (of child 1) */

static const int lineage[MEMBERS][3] = { { 0, -1 }, { 0, 1, -1 }, { 0, 2, -1 }, { 0, 3, -1 }, { 0, 1, 4 } };
static const int late_page[MEMBERS] = { 50, 60, -1, -1, -1 }; /* written after forking */

struct shared {
	volatile int ready[MEMBERS];
	volatile int verdict[MEMBERS];
	char why[MEMBERS][200];
	volatile pid_t pids[MEMBERS];
};
static struct shared *sh;
static unsigned char *area;

static unsigned long own_page(int w) { return 10UL * w + 1; }
static unsigned long zeroed_page(int w) { return 10UL * w + 2; }
static unsigned long dropped_page(int w) { return 10UL * w + 3; }
static unsigned long only_page(int w) { return DATA_PAGES + w; }

static unsigned char *page_at(unsigned long page) { return area + page * VPAGE; }

/* The pattern seed process WHO must see at PAGE (0: zeros). */
static uint64_t expected_seed(int who, unsigned long page)
{
	uint64_t seed = page < DATA_PAGES ? page + 1 : 0;
	for (int i = 0; i < 3 && lineage[who][i] >= 0; i++) {
		int a = lineage[who][i];
		if (a == 0)
			continue;
		if (page == own_page(a) || page == only_page(a))
			seed = 1000UL * a + page;
		if (page == zeroed_page(a) || page == dropped_page(a))
			seed = 0;
	}
	if (late_page[who] >= 0 && page == (unsigned long)late_page[who])
		seed = 2000UL * (who + 1) + page;
	return seed;
}

static void write_page(unsigned long page, uint64_t seed) { fill_pattern(page_at(page), VPAGE, seed); }

/* A child's changes to what it inherited. */
static void diverge(int who)
{
	write_page(own_page(who), 1000UL * who + own_page(who));
	write_page(only_page(who), 1000UL * who + only_page(who));
	memset(page_at(zeroed_page(who)), 0, VPAGE);
	SETUP(madvise(page_at(dropped_page(who)), VPAGE, MADV_DONTNEED) == 0);
}

/* The first thing wrong that member WHO found; its verdict is whether there is one. */
static __attribute__((format(printf, 2, 3))) void complain(int who, const char *fmt, ...)
{
	if (sh->why[who][0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sh->why[who], sizeof sh->why[who], fmt, ap);
	va_end(ap);
}

static void check_area(int who)
{
	for (unsigned long page = 0; page < AREA_PAGES && !sh->why[who][0]; page++) {
		uint64_t seed = expected_seed(who, page);
		long at = seed ? pattern_mismatch(page_at(page), VPAGE, seed) : zero_mismatch(page_at(page), VPAGE);
		if (at >= 0)
			complain(who, "member %d: page %lu differs at byte %ld (expected %s %llu)",
				 who, page, at, seed ? "pattern" : "zeros", (unsigned long long)seed);
	}
}

static void __attribute__((noreturn)) member(int who)
{
	sh->pids[who] = getpid();
	diverge(who);
	pid_t grandchild = 0;
	if (who == 1) {
		grandchild = fork();
		SETUP(grandchild >= 0);
		if (grandchild == 0)
			member(4);
		write_page(late_page[1], 2000UL * 2 + late_page[1]);
	}
	sh->ready[who] = 1;
	while (!victim_stop)
		victim_nap_ms(5);
	check_area(who);
	if (grandchild) {
		kill(grandchild, SIGTERM);
		int status;
		if (waitpid(grandchild, &status, 0) != grandchild || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			complain(who, "grandchild %d did not exit cleanly: %x", grandchild, status);
	}
	sh->verdict[who] = sh->why[who][0] ? -1 : 1;
	_exit(0);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	area = mmap(NULL, AREA_PAGES * VPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sh = mmap(NULL, VPAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	SETUP(area != MAP_FAILED && sh != MAP_FAILED);
	for (unsigned long page = 0; page < DATA_PAGES; page++)
		write_page(page, page + 1);
	/* a read-only stretch: three VMAs side by side, each shared on its own */
	SETUP(mprotect(page_at(READONLY_PAGE), 4 * VPAGE, PROT_READ) == 0);
	sh->pids[0] = getpid();
	for (int who = 1; who <= 3; who++) {
		pid_t c = fork();
		SETUP(c >= 0);
		if (c == 0)
			member(who);
	}
	write_page(late_page[0], 2000UL + late_page[0]);
	for (int i = 0; i < 5000; i++) {
		int all = 1;
		for (int w = 1; w < MEMBERS; w++)
			all &= sh->ready[w];
		if (all)
			break;
		victim_nap_ms(1);
	}
	for (int w = 1; w < MEMBERS; w++)
		SETUP(sh->ready[w]);
	victim_ready();

	victim_wait(NULL);
	check_area(0);
	CHECK(!sh->why[0][0], "%s", sh->why[0]);
	for (int w = 1; w <= 3; w++) {
		kill(sh->pids[w], SIGTERM);
		int status;
		pid_t r = waitpid(sh->pids[w], &status, 0);
		CHECK(r == sh->pids[w] && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d (pid %d) did not exit cleanly: %d %x", w, sh->pids[w], r, status);
	}
	for (int w = 1; w < MEMBERS; w++)
		CHECK(sh->verdict[w] == 1, "%s", sh->verdict[w] ? sh->why[w] : "a member gave no verdict");
	victim_finish();
}
