/*
 * mprotect: one 8-page mapping split by mprotect into rw (pages 0-2),
 * read-only (3-5) and rw (6-7). After restore each range has its perms and
 * exact bounds in /proc/self/maps and its content; writing the read-only range
 * faults with SEGV_ACCERR, writing the rw ranges works.
 */
#include <setjmp.h>
#include "victim.h"

#define PAGES 8

static unsigned char *area;
static sigjmp_buf segv_jump;
static volatile int fault_code;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	fault_code = si->si_code;
	siglongjmp(segv_jump, sig);
}

static void check_range(int first, int count, const char *perms)
{
	struct vma v;
	unsigned char *p = area + first * VPAGE;
	if (find_vma(p, &v) != 0) {
		fail("pages %d-%d are not mapped", first, first + count - 1);
		return;
	}
	CHECK(strcmp(v.perms, perms) == 0, "pages %d-%d have perms %s, expected %s", first, first + count - 1,
	      v.perms, perms);
	/* the rw ranges may merge with neighbouring mappings; the read-only one cannot */
	CHECK(v.start <= (unsigned long)p && v.end >= (unsigned long)(p + count * VPAGE),
	      "pages %d-%d are mapped as %#lx-%#lx, expected to cover %p-%p", first, first + count - 1,
	      v.start, v.end, (void *)p, (void *)(p + count * VPAGE));
	CHECK(strcmp(perms, "r--p") != 0 || (v.start == (unsigned long)p && v.end == (unsigned long)(p + count * VPAGE)),
	      "read-only pages %d-%d are mapped as %#lx-%#lx, expected exactly %p-%p", first, first + count - 1,
	      v.start, v.end, (void *)p, (void *)(p + count * VPAGE));
	for (int i = first; i < first + count; i++)
		CHECK(pattern_mismatch(area + i * VPAGE, VPAGE, i) < 0, "page %d content changed", i);
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
	for (int i = 0; i < PAGES; i++)
		fill_pattern(area + i * VPAGE, VPAGE, i);
	SETUP(mprotect(area + 3 * VPAGE, 3 * VPAGE, PROT_READ) == 0);
	victim_ready();

	victim_wait(NULL);

	check_range(0, 3, "rw-p");
	check_range(3, 3, "r--p");
	check_range(6, 2, "rw-p");
	if (sigsetjmp(segv_jump, 1) == 0) {
		area[4 * VPAGE] = 1;
		fail("writing the read-only page 4 did not fault");
	} else {
		CHECK(fault_code == SEGV_ACCERR, "writing the read-only page faulted with si_code %d, expected SEGV_ACCERR",
		      fault_code);
	}
	area[0] ^= 1;
	area[7 * VPAGE] ^= 1;
	CHECK(pattern_mismatch(area, VPAGE, 0) == 0 && pattern_mismatch(area + 7 * VPAGE, VPAGE, 7) == 0,
	      "writes to the rw pages did not stick");
	victim_finish();
}
