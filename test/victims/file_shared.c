/*
 * file_shared: an 8-page file mapped MAP_SHARED and written through the
 * mapping. read() of the file must always equal the mapping, before and after
 * restore, and a write through the mapping after restore must reach the file.
 */
#include "victim.h"

#define PAGES 8

static const char *path;
static unsigned char *map;
static struct stat file_stat;
static uint64_t counter;

/* The file, read with read(), equals the mapping. */
static void check_file_equals_mapping(void)
{
	static unsigned char content[PAGES * VPAGE];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail("open %s: %s", path, err());
		return;
	}
	ssize_t n = read(fd, content, sizeof content);
	if (n != (ssize_t)sizeof content)
		fail("read of %s returned %zd, %s", path, n, err());
	else
		for (size_t i = 0; i < sizeof content; i++)
			if (content[i] != map[i]) {
				fail("file byte %zu is %#x but the shared mapping has %#x", i, content[i], map[i]);
				break;
			}
	close(fd);
}

static void tick(void)
{
	((volatile uint64_t *)map)[0] = ++counter;
	if (counter % 16 == 0)
		check_file_equals_mapping();
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	path = victim_file("shared.dat");
	int fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
	SETUP(fd >= 0);
	SETUP(ftruncate(fd, PAGES * VPAGE) == 0);
	SETUP(fstat(fd, &file_stat) == 0);
	map = mmap(NULL, PAGES * VPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	SETUP(map != MAP_FAILED);
	SETUP(close(fd) == 0);
	fill_pattern(map + VPAGE, (PAGES - 1) * VPAGE, 31);
	tick();
	check_file_equals_mapping();
	victim_ready();

	victim_wait(tick);

	check_file_equals_mapping();
	CHECK(pattern_mismatch(map + VPAGE, (PAGES - 1) * VPAGE, 31) < 0, "pattern in the shared mapping changed");
	fill_pattern(map + 3 * VPAGE, VPAGE, 999);
	check_file_equals_mapping();
	struct vma v;
	if (find_vma(map, &v) != 0)
		fail("the mapping at %p is gone from /proc/self/maps", (void *)map);
	else {
		CHECK(strcmp(v.perms, "rw-s") == 0, "mapping perms are %s, expected rw-s", v.perms);
		CHECK(strcmp(v.path, path) == 0 && v.inode == file_stat.st_ino,
		      "mapping names '%s' inode %lu, expected %s inode %lu", v.path, v.inode, path,
		      (unsigned long)file_stat.st_ino);
	}
	victim_finish();
}
