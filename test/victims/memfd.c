/*
 * memfd: a sealable memfd of 5 pages, written with pwrite, mapped MAP_SHARED
 * and changed through the mapping, then sealed with F_SEAL_SHRINK; the fd stays
 * open. After restore the fd and the mapping are still one object (writes
 * through either are seen through the other), the seal holds, and the names in
 * /proc/self/fd and maps are the memfd's.
 */
#include "victim.h"

#define PAGES 5
#define NAME "ferry-victim"

static int fd;
static unsigned char *map;
static struct stat recorded;
static uint64_t counter;

static void tick(void)
{
	uint64_t seen = 0;
	((volatile uint64_t *)map)[0] = ++counter;
	ssize_t n = pread(fd, &seen, sizeof seen, 0);
	CHECK(n == sizeof seen && seen == counter, "pread of the memfd returned %zd with %llu, mapping has %llu (%s)",
	      n, (unsigned long long)seen, (unsigned long long)counter, err());
}

int main(int argc, char **argv)
{
	static unsigned char page[VPAGE];
	victim_init(argc, argv);
	fd = memfd_create(NAME, MFD_ALLOW_SEALING | MFD_CLOEXEC);
	SETUP(fd >= 0);
	for (int i = 0; i < PAGES; i++) {
		fill_pattern(page, VPAGE, i);
		SETUP(pwrite(fd, page, VPAGE, i * VPAGE) == (ssize_t)VPAGE);
	}
	map = mmap(NULL, PAGES * VPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	SETUP(map != MAP_FAILED);
	fill_pattern(map + 2 * VPAGE, VPAGE, 200);
	SETUP(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0);
	SETUP(fstat(fd, &recorded) == 0);
	tick();
	victim_ready();

	victim_wait(tick);

	char link[PATH_MAX];
	struct stat now;
	struct vma v;
	CHECK(strcmp(fd_link(fd, link, sizeof link), "/memfd:" NAME " (deleted)") == 0,
	      "fd %d links to '%s', expected /memfd:" NAME " (deleted)", fd, link);
	CHECK(fcntl(fd, F_GETFD) == FD_CLOEXEC, "fd flags are %d, expected FD_CLOEXEC", fcntl(fd, F_GETFD));
	int seals = fcntl(fd, F_GET_SEALS);
	CHECK(seals == F_SEAL_SHRINK, "seals are %#x, expected F_SEAL_SHRINK (%#x), %s", seals, F_SEAL_SHRINK, err());
	if (fstat(fd, &now) != 0)
		fail("fstat: %s", err());
	else
		CHECK(now.st_size == PAGES * (off_t)VPAGE && (now.st_mode & 07777) == (recorded.st_mode & 07777),
		      "memfd size %lld mode %o, expected %lu and %o", (long long)now.st_size, now.st_mode & 07777,
		      PAGES * VPAGE, recorded.st_mode & 07777);
	if (find_vma(map, &v) != 0)
		fail("the memfd mapping at %p is gone", (void *)map);
	else {
		CHECK(strcmp(v.path, "/memfd:" NAME " (deleted)") == 0 && strcmp(v.perms, "rw-s") == 0,
		      "memfd mapping is '%s %s', expected 'rw-s /memfd:" NAME " (deleted)'", v.perms, v.path);
		CHECK(v.inode == (unsigned long)now.st_ino, "the mapping (inode %lu) and the fd (inode %lu) are different objects",
		      v.inode, (unsigned long)now.st_ino);
	}
	for (int i = 1; i < PAGES; i++) {
		CHECK(pread(fd, page, VPAGE, i * VPAGE) == (ssize_t)VPAGE, "pread page %d: %s", i, err());
		CHECK(pattern_mismatch(page, VPAGE, i == 2 ? 200 : i) < 0, "memfd page %d read through the fd changed", i);
		CHECK(memcmp(page, map + i * VPAGE, VPAGE) == 0, "memfd page %d: fd and mapping differ", i);
	}
	fill_pattern(page, VPAGE, 300);
	CHECK(pwrite(fd, page, VPAGE, 4 * VPAGE) == (ssize_t)VPAGE, "pwrite: %s", err());
	CHECK(memcmp(page, map + 4 * VPAGE, VPAGE) == 0, "pwrite to the memfd is not seen in the mapping");
	tick();
	CHECK(ftruncate(fd, VPAGE) == -1 && errno == EPERM, "shrinking a F_SEAL_SHRINK memfd did not fail with EPERM");
	victim_finish();
}
