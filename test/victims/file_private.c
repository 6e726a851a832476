/*
 * file_private: a 16-page file mapped MAP_PRIVATE (pages 2..13, offset 8 KiB);
 * mapping pages 1, 5 and 6 are then modified, which copies them (COW). After
 * restore the mapping shows the private changes, the file itself is unchanged
 * and /proc/self/maps still names the file at the same offset.
 */
#include "victim.h"

#define FILE_PAGES 16
#define MAP_FIRST 2
#define MAP_PAGES 12

static const char *path;
static unsigned char *map;
static struct stat file_stat;

static int modified(size_t page) { return page == 1 || page == 5 || page == 6; }

static void check_mapping(void)
{
	for (size_t i = 0; i < MAP_PAGES; i++) {
		uint64_t seed = modified(i) ? 1000 + i : MAP_FIRST + i;
		long off = pattern_mismatch(map + i * VPAGE, VPAGE, seed);
		CHECK(off < 0, "mapping page %zu (%s) differs at byte %ld", i,
		      modified(i) ? "privately modified" : "from the file", off);
	}
}

static void check_file(void)
{
	static unsigned char page[VPAGE];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail("open %s: %s", path, err());
		return;
	}
	for (size_t i = 0; i < FILE_PAGES; i++) {
		ssize_t n = pread(fd, page, VPAGE, i * VPAGE);
		if (n != (ssize_t)VPAGE) {
			fail("pread page %zu of %s returned %zd, %s", i, path, n, err());
			break;
		}
		CHECK(pattern_mismatch(page, VPAGE, i) < 0, "file page %zu changed: private writes reached the file", i);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	static unsigned char page[VPAGE];
	victim_init(argc, argv);
	path = victim_file("private.dat");
	int fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
	SETUP(fd >= 0);
	for (size_t i = 0; i < FILE_PAGES; i++) {
		fill_pattern(page, VPAGE, i);
		SETUP(write(fd, page, VPAGE) == (ssize_t)VPAGE);
	}
	SETUP(fstat(fd, &file_stat) == 0);
	map = mmap(NULL, MAP_PAGES * VPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, MAP_FIRST * VPAGE);
	SETUP(map != MAP_FAILED);
	SETUP(close(fd) == 0);
	for (size_t i = 0; i < MAP_PAGES; i++)
		if (modified(i))
			fill_pattern(map + i * VPAGE, VPAGE, 1000 + i);
	check_mapping();
	check_file();
	victim_ready();

	victim_wait(check_mapping);

	check_mapping();
	check_file();
	struct vma v;
	if (find_vma(map, &v) != 0) {
		fail("the mapping at %p is gone from /proc/self/maps", (void *)map);
	} else {
		CHECK(strcmp(v.perms, "rw-p") == 0, "mapping perms are %s, expected rw-p", v.perms);
		CHECK(strcmp(v.path, path) == 0, "mapping names '%s', expected %s", v.path, path);
		CHECK(v.offset == MAP_FIRST * VPAGE, "mapping offset is %#lx, expected %#lx", v.offset,
		      MAP_FIRST * VPAGE);
		CHECK(v.inode == file_stat.st_ino, "mapping inode is %lu, file's is %lu", v.inode,
		      (unsigned long)file_stat.st_ino);
		CHECK(v.start == (unsigned long)map && v.end == (unsigned long)map + MAP_PAGES * VPAGE,
		      "mapping spans %#lx-%#lx, expected %p + %lu pages", v.start, v.end, (void *)map,
		      (unsigned long)MAP_PAGES);
	}
	/* another private write after restore must not reach the file either */
	fill_pattern(map + 9 * VPAGE, VPAGE, 5555);
	check_file();
	victim_finish();
}
