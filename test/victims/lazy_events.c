/*
 * lazy_events: memory that changes shape while a lazy restore is still filling it. Setup makes
 * five 4 MiB private anonymous regions with distinct patterns (and 16 MiB more of bulk; the
 * kernel may place them side by side in one mapping). After
 * SIGUSR1 (the harness sends it right after the restore) the wait loop, touching nothing before:
 *   - mremap()s the "remap" region to a reserved address: its content must follow it;
 *   - madvise(MADV_DONTNEED)s the middle 2 MiB of the "remove" region: zeros there, pattern around;
 *   - munmap()s the middle 2 MiB of the "unmap" region and maps fresh memory there: zeros;
 *   - fork()s a child that checks the "fork" region and the bulk, then exits with the verdict;
 *   - checks the "keep" region.
 * then creates RESULTFILE.events. On SIGTERM (events still due are done first) everything is
 * checked again, and that the events did happen.
 */
#include <sys/wait.h>
#include "victim.h"

#define REGION (4UL << 20)
#define BULK (16UL << 20)
#define MIB (1UL << 20)

static unsigned char *remap_from, *remap_to, *removed, *unmapped, *forked, *kept, *bulk;
static volatile sig_atomic_t go;
static int done_events;

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

static void fill(unsigned char *p, size_t len, uint64_t seed)
{
	for (size_t off = 0; off < len; off += VPAGE)
		fill_pattern(p + off, VPAGE, seed * 100000 + off / VPAGE);
}

/* Offset of the first page of [base+from, base+from+len) that differs from fill(base, seed), or -1. */
static long check_part(const unsigned char *base, size_t from, size_t len, uint64_t seed)
{
	for (size_t off = from; off < from + len; off += VPAGE)
		if (pattern_mismatch(base + off, VPAGE, seed * 100000 + off / VPAGE) >= 0)
			return (long)off;
	return -1;
}

static long check_fill(const unsigned char *p, size_t len, uint64_t seed)
{
	return check_part(p, 0, len, seed);
}

static void check_all(const char *when)
{
	long off;
	CHECK((off = check_fill(remap_to, REGION, 1)) < 0, "%s: remapped region differs at offset %ld", when, off);
	CHECK((off = check_fill(removed, MIB, 2)) < 0, "%s: region before MADV_DONTNEED differs at %ld", when, off);
	CHECK((off = zero_mismatch(removed + MIB, 2 * MIB)) < 0, "%s: MADV_DONTNEED range not zero at %ld", when, off);
	CHECK((off = check_part(removed, 3 * MIB, MIB, 2)) < 0, "%s: region after MADV_DONTNEED differs at %ld", when, off);
	CHECK((off = check_fill(unmapped, MIB, 3)) < 0, "%s: region before the hole differs at %ld", when, off);
	CHECK((off = zero_mismatch(unmapped + MIB, 2 * MIB)) < 0, "%s: fresh mapping in the hole not zero at %ld", when, off);
	CHECK((off = check_part(unmapped, 3 * MIB, MIB, 3)) < 0, "%s: region after the hole differs at %ld", when, off);
	CHECK((off = check_fill(forked, REGION, 4)) < 0, "%s: fork region differs at %ld", when, off);
	CHECK((off = check_fill(kept, REGION, 5)) < 0, "%s: kept region differs at %ld", when, off);
	CHECK((off = check_fill(bulk, BULK, 6)) < 0, "%s: bulk differs at %ld", when, off);
}

static void events(void)
{
	/* mremap to the reserved address, before a single page of the region is touched */
	void *to = mremap(remap_from, REGION, REGION, MREMAP_MAYMOVE | MREMAP_FIXED, remap_to);
	CHECK(to == remap_to, "mremap: %s", err());
	struct vma v;
	CHECK(find_vma(remap_from, &v) != 0 || v.start >= (unsigned long)remap_from + REGION, "old place of the remapped region is still mapped");

	CHECK(madvise(removed + MIB, 2 * MIB, MADV_DONTNEED) == 0, "madvise(DONTNEED): %s", err());

	CHECK(munmap(unmapped + MIB, 2 * MIB) == 0, "munmap: %s", err());
	void *hole = mmap(unmapped + MIB, 2 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHECK(hole == unmapped + MIB, "mmap in the hole: %s", err());

	pid_t child = fork();
	if (child == 0) {
		long a = check_fill(forked, REGION, 4), b = check_fill(bulk, BULK, 6);
		_exit(a < 0 && b < 0 ? 0 : 1);
	}
	CHECK(child > 0, "fork: %s", err());
	int status = 0;
	while (child > 0 && waitpid(child, &status, 0) < 0 && errno == EINTR) {}
	CHECK(child <= 0 || (WIFEXITED(status) && WEXITSTATUS(status) == 0), "the forked child saw wrong memory (status 0x%x)", status);
	check_all("right after the events");
	done_events = 1;
	char marker[sizeof victim_result + 8];
	snprintf(marker, sizeof marker, "%s.events", victim_result);
	CHECK(victim_write_text(marker, "done") == 0, "cannot create %s: %s", marker, err());
}

static void tick(void)
{
	if (go && !done_events)
		events();
}

static unsigned char *map(size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	SETUP(p != MAP_FAILED);
	return p;
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	SETUP(sigaction(SIGUSR1, &sa, NULL) == 0);
	remap_from = map(REGION, PROT_READ | PROT_WRITE);
	removed = map(REGION, PROT_READ | PROT_WRITE);
	unmapped = map(REGION, PROT_READ | PROT_WRITE);
	forked = map(REGION, PROT_READ | PROT_WRITE);
	kept = map(REGION, PROT_READ | PROT_WRITE);
	bulk = map(BULK, PROT_READ | PROT_WRITE);
	remap_to = map(REGION, PROT_NONE); /* reserved: the remap lands here */
	fill(remap_from, REGION, 1);
	fill(removed, REGION, 2);
	fill(unmapped, REGION, 3);
	fill(forked, REGION, 4);
	fill(kept, REGION, 5);
	fill(bulk, BULK, 6);
	victim_ready();

	victim_wait(tick);
	tick(); /* SIGUSR1 and SIGTERM may have come together */

	CHECK(done_events, "SIGUSR1 never came: the events did not happen");
	if (done_events)
		check_all("at the end");
	victim_finish();
}
