/*
 * memfd_sparse: a 64 MiB memfd named "sparse memfd" with three data extents
 * (one page at 0, one page at 10 MiB, 200 KiB at 40 MiB) and holes between,
 * mode 0640, offset 12345, a writable MAP_SHARED mapping of 64 KiB at 40 MiB
 * made before the seals F_SEAL_GROW|F_SEAL_SHRINK|F_SEAL_FUTURE_WRITE|F_SEAL_SEAL
 * (no new writable mapping could be made after them); a second, read-only open
 * of it through /proc/self/fd with offset 777; and a memfd made without
 * MFD_ALLOW_SEALING holding "hello" at offset 5. After restore: content,
 * holes where they were (SEEK_DATA/SEEK_HOLE), size, mode, seals, offsets,
 * access modes, one object behind both opens and the mapping.
 */
#include "victim.h"

#define MiB (1UL << 20)
#define SIZE (64 * MiB)
#define BIG (200 * 1024UL)
#define MAPPED (64 * 1024UL)
#define SEALS (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL)

static int fd, ro, plain;
static unsigned char *map;
static uint64_t counter;
static struct { off_t start, len; uint64_t seed; } extents[] = {
	{ 0, VPAGE, 1 }, { 10 * MiB, VPAGE, 2 }, { 40 * MiB, BIG, 3 },
};

static void tick(void)
{
	uint64_t seen = 0;
	((volatile uint64_t *)map)[1] = ++counter;
	CHECK(pread(fd, &seen, sizeof seen, 40 * MiB + 8) == sizeof seen && seen == counter,
	      "pread sees %llu, the mapping has %llu", (unsigned long long)seen, (unsigned long long)counter);
}

static void expect_seek(int whence, off_t from, off_t expected)
{
	off_t got = lseek(ro, from, whence);
	CHECK(got == expected, "lseek(%s, %lld) gave %lld, expected %lld (%s)", whence == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE",
	      (long long)from, (long long)got, (long long)expected, err());
}

int main(int argc, char **argv)
{
	static unsigned char buf[BIG];
	victim_init(argc, argv);
	fd = memfd_create("sparse memfd", MFD_ALLOW_SEALING);
	SETUP(fd >= 0);
	SETUP(ftruncate(fd, SIZE) == 0);
	for (int i = 0; i < 3; i++) {
		fill_pattern(buf, extents[i].len, extents[i].seed);
		SETUP(pwrite(fd, buf, extents[i].len, extents[i].start) == (ssize_t)extents[i].len);
	}
	SETUP(fchmod(fd, 0640) == 0);
	map = mmap(NULL, MAPPED, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 40 * MiB);
	SETUP(map != MAP_FAILED);
	SETUP(fcntl(fd, F_ADD_SEALS, SEALS) == 0);
	SETUP(lseek(fd, 12345, SEEK_SET) == 12345);
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	SETUP(ro >= 0 && lseek(ro, 777, SEEK_SET) == 777);
	plain = memfd_create("plain", MFD_CLOEXEC);
	SETUP(plain >= 0 && write(plain, "hello", 5) == 5);
	tick();
	victim_ready();

	victim_wait(tick);

	struct stat st, st_ro;
	char link[PATH_MAX];
	struct vma v;
	CHECK(fstat(fd, &st) == 0 && fstat(ro, &st_ro) == 0, "fstat: %s", err());
	CHECK(st.st_ino == st_ro.st_ino, "the read-only open is another object (inode %lu, not %lu)",
	      (unsigned long)st_ro.st_ino, (unsigned long)st.st_ino);
	CHECK(st.st_size == (off_t)SIZE && (st.st_mode & 07777) == 0640, "size %lld mode %o, expected 64 MiB and 0640",
	      (long long)st.st_size, st.st_mode & 07777);
	CHECK(strcmp(fd_link(fd, link, sizeof link), "/memfd:sparse memfd (deleted)") == 0, "fd %d links to '%s'", fd, link);
	CHECK(fcntl(fd, F_GET_SEALS) == SEALS, "seals are %#x, expected %#x", fcntl(fd, F_GET_SEALS), SEALS);
	CHECK(lseek(fd, 0, SEEK_CUR) == 12345 && lseek(ro, 0, SEEK_CUR) == 777, "offsets are %lld and %lld",
	      (long long)lseek(fd, 0, SEEK_CUR), (long long)lseek(ro, 0, SEEK_CUR));
	CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR && (fcntl(ro, F_GETFL) & O_ACCMODE) == O_RDONLY,
	      "access modes are %#o and %#o", fcntl(fd, F_GETFL), fcntl(ro, F_GETFL));
	CHECK(fcntl(fd, F_GETFD) == 0 && fcntl(ro, F_GETFD) == FD_CLOEXEC, "FD_CLOEXEC flags changed");

	expect_seek(SEEK_DATA, 0, 0);
	expect_seek(SEEK_HOLE, 0, VPAGE);
	expect_seek(SEEK_DATA, VPAGE, 10 * MiB);
	expect_seek(SEEK_HOLE, 10 * MiB, 10 * MiB + VPAGE);
	expect_seek(SEEK_DATA, 10 * MiB + VPAGE, 40 * MiB);
	expect_seek(SEEK_HOLE, 40 * MiB, 40 * MiB + BIG);
	CHECK(lseek(ro, 40 * MiB + BIG, SEEK_DATA) == -1 && errno == ENXIO, "data after the last extent");
	for (int i = 0; i < 3; i++) {
		CHECK(pread(ro, buf, extents[i].len, extents[i].start) == (ssize_t)extents[i].len, "pread: %s", err());
		if (i == 2)
			memcpy(buf + 8, (uint64_t[]){ mix64(3 * 0x100000001b3ULL + 1) }, 8); /* the tick's word */
		CHECK(pattern_mismatch(buf, extents[i].len, extents[i].seed) < 0, "extent %d changed at +%ld", i,
		      pattern_mismatch(buf, extents[i].len, extents[i].seed));
	}
	if (find_vma(map, &v) != 0)
		fail("the mapping at %p is gone", (void *)map);
	else
		CHECK(v.inode == (unsigned long)st.st_ino && strcmp(v.perms, "rw-s") == 0,
		      "the mapping is '%s' of inode %lu, expected rw-s of %lu", v.perms, v.inode, (unsigned long)st.st_ino);
	tick();
	CHECK(pwrite(fd, "x", 1, 0) == -1 && errno == EPERM, "write despite F_SEAL_FUTURE_WRITE (%s)", err());
	void *again = mmap(NULL, VPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(again == MAP_FAILED, "a new writable mapping despite F_SEAL_FUTURE_WRITE");

	char hello[8] = { 0 };
	CHECK(pread(plain, hello, sizeof hello, 0) == 5 && strcmp(hello, "hello") == 0, "plain memfd holds '%s'", hello);
	CHECK(lseek(plain, 0, SEEK_CUR) == 5, "plain memfd offset %lld", (long long)lseek(plain, 0, SEEK_CUR));
	CHECK(fcntl(plain, F_GET_SEALS) == F_SEAL_SEAL && fcntl(plain, F_ADD_SEALS, F_SEAL_WRITE) == -1 && errno == EPERM,
	      "plain memfd: seals %#x, sealing allowed", fcntl(plain, F_GET_SEALS));
	victim_finish();
}
