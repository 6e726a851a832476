/*
 * guard_pages: nine pages in one mapping; pages 1, 3, 5 and 7 are made
 * PROT_NONE, the others hold a pattern. After restore the guards are still
 * ---p in /proc/self/maps and touching them raises SIGSEGV with SEGV_ACCERR
 * (a hole would give SEGV_MAPERR); the other pages are intact.
 */
#include <setjmp.h>
#include "victim.h"

#define PAGES 9

static unsigned char *area;
static sigjmp_buf segv_jump;
static volatile void *fault_addr;
static volatile int fault_code;

static int is_guard(int page) { return page % 2 == 1; }

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	fault_addr = si->si_addr;
	fault_code = si->si_code;
	siglongjmp(segv_jump, sig);
}

static void check_page(int page)
{
	unsigned char *p = area + page * VPAGE;
	struct vma v;
	if (find_vma(p, &v) != 0) {
		fail("page %d (%p) is not mapped at all", page, (void *)p);
		return;
	}
	if (!is_guard(page)) {
		CHECK(strcmp(v.perms, "rw-p") == 0, "page %d has perms %s, expected rw-p", page, v.perms);
		CHECK(pattern_mismatch(p, VPAGE, page) < 0, "page %d content changed", page);
		return;
	}
	CHECK(strcmp(v.perms, "---p") == 0, "guard page %d has perms %s, expected ---p", page, v.perms);
	fault_addr = NULL;
	if (sigsetjmp(segv_jump, 1) == 0) {
		(void)*(volatile unsigned char *)(p + 123);
		fail("reading guard page %d did not fault", page);
		return;
	}
	CHECK(fault_addr == p + 123 && fault_code == SEGV_ACCERR,
	      "guard page %d faulted at %p with si_code %d, expected %p and SEGV_ACCERR", page,
	      (void *)fault_addr, fault_code, (void *)(p + 123));
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	SETUP(sigaction(SIGSEGV, &sa, NULL) == 0);
	area = mmap(NULL, PAGES * VPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	SETUP(area != MAP_FAILED);
	for (int page = 0; page < PAGES; page++) {
		if (is_guard(page))
			SETUP(mprotect(area + page * VPAGE, VPAGE, PROT_NONE) == 0);
		else
			fill_pattern(area + page * VPAGE, VPAGE, page);
	}
	for (int page = 0; page < PAGES; page++)
		check_page(page);
	victim_ready();

	victim_wait(NULL);

	for (int page = 0; page < PAGES; page++)
		check_page(page);
	victim_finish();
}
