/*
 * anon_shared: 4 MiB of MAP_SHARED|MAP_ANONYMOUS memory with a pattern, plus a
 * second mapping of the same pages (mremap with old_size 0 makes an alias).
 * After restore the two must still be one object: a write through one mapping
 * is seen through the other. The wait loop bounces a counter between them.
 */
#include "victim.h"

#define SIZE (4UL << 20)

static unsigned char *area, *alias;
static uint64_t counter;

static void tick(void)
{
	volatile uint64_t *in_area = (uint64_t *)area, *in_alias = (uint64_t *)alias;
	*in_alias = ++counter;
	CHECK(*in_area == counter, "write through the alias is not seen in the area (%llu != %llu)",
	      (unsigned long long)*in_area, (unsigned long long)counter);
}

static void check_mapping(const char *what, void *addr, unsigned long *inode)
{
	struct vma v;
	if (find_vma(addr, &v) != 0) {
		fail("%s at %p is not in /proc/self/maps", what, addr);
		return;
	}
	CHECK(strcmp(v.perms, "rw-s") == 0, "%s has perms %s, expected rw-s", what, v.perms);
	CHECK(strncmp(v.path, "/dev/zero", 9) == 0, "%s maps '%s', expected shared anonymous (/dev/zero)",
	      what, v.path);
	*inode = v.inode;
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	area = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	SETUP(area != MAP_FAILED);
	/* page 0 is the counter's; the rest hold the pattern */
	fill_pattern(area + VPAGE, SIZE - VPAGE, 77);
	alias = mremap(area, 0, SIZE, MREMAP_MAYMOVE);
	SETUP(alias != MAP_FAILED);
	tick();
	victim_ready();

	victim_wait(tick);

	unsigned long ino_area = 0, ino_alias = 0;
	check_mapping("area", area, &ino_area);
	check_mapping("alias", alias, &ino_alias);
	CHECK(ino_area == ino_alias, "area and alias map different objects (inodes %lu and %lu)",
	      ino_area, ino_alias);
	long off = pattern_mismatch(area + VPAGE, SIZE - VPAGE, 77);
	CHECK(off < 0, "pattern in the shared area differs at byte %ld", off + (long)VPAGE);
	off = pattern_mismatch(alias + VPAGE, SIZE - VPAGE, 77);
	CHECK(off < 0, "pattern seen through the alias differs at byte %ld", off + (long)VPAGE);
	fill_pattern(area + 100 * VPAGE, VPAGE, 4242);
	CHECK(pattern_mismatch(alias + 100 * VPAGE, VPAGE, 4242) < 0,
	      "a page written through the area after restore is not seen through the alias");
	tick();
	victim_finish();
}
