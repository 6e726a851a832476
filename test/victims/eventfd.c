/*
 * eventfd: a counter eventfd created with 5 and then written 37 (so it holds
 * 42), and an EFD_SEMAPHORE one holding 3, both non-blocking. After restore
 * fdinfo shows the counts and flags, the counter reads 42 once, the
 * semaphore reads 1 three times, then both say EAGAIN.
 */
#include <sys/eventfd.h>
#include "victim.h"

static int counter, semaphore, counter_flags, semaphore_flags;

/* The eventfd-count line of FD's fdinfo, or -1. */
static long long fdinfo_count(int fd)
{
	char path[64], value[64];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	if (proc_field(path, "eventfd-count", value, sizeof value) != 0) {
		fail("no eventfd-count in %s: %s", path, err());
		return -1;
	}
	return strtoll(value, NULL, 16);
}

static void tick(void)
{
	CHECK(fdinfo_count(counter) == 42, "counter eventfd count is %lld, expected 42", fdinfo_count(counter));
	CHECK(fdinfo_count(semaphore) == 3, "semaphore eventfd count is %lld, expected 3", fdinfo_count(semaphore));
}

static void expect_read(int fd, const char *name, uint64_t expected)
{
	uint64_t value = 0;
	ssize_t n = read(fd, &value, sizeof value);
	CHECK(n == sizeof value && value == expected, "read of the %s eventfd returned %zd/%llu, expected %llu (%s)", name,
	      n, (unsigned long long)value, (unsigned long long)expected, err());
}

static void expect_empty(int fd, const char *name)
{
	uint64_t value;
	ssize_t n = read(fd, &value, sizeof value);
	CHECK(n == -1 && errno == EAGAIN, "the %s eventfd should be empty but read returned %zd (%s)", name, n, err());
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	counter = eventfd(5, EFD_NONBLOCK | EFD_CLOEXEC);
	SETUP(counter >= 0);
	uint64_t add = 37;
	SETUP(write(counter, &add, sizeof add) == sizeof add);
	semaphore = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
	SETUP(semaphore >= 0);
	counter_flags = fcntl(counter, F_GETFL);
	semaphore_flags = fcntl(semaphore, F_GETFL);
	tick();
	victim_ready();

	victim_wait(tick);

	tick();
	char link[64];
	CHECK(strcmp(fd_link(counter, link, sizeof link), "anon_inode:[eventfd]") == 0, "fd %d links to '%s'", counter,
	      link);
	CHECK(fcntl(counter, F_GETFL) == counter_flags && fcntl(semaphore, F_GETFL) == semaphore_flags,
	      "flags are %#o/%#o, expected %#o/%#o", fcntl(counter, F_GETFL), fcntl(semaphore, F_GETFL), counter_flags,
	      semaphore_flags);
	CHECK(fcntl(counter, F_GETFD) == FD_CLOEXEC && fcntl(semaphore, F_GETFD) == 0, "FD_CLOEXEC flags changed");
	expect_read(counter, "counter", 42);
	expect_empty(counter, "counter");
	for (int i = 0; i < 3; i++)
		expect_read(semaphore, "semaphore", 1);
	expect_empty(semaphore, "semaphore");
	CHECK(write(counter, &add, sizeof add) == sizeof add, "write to the counter eventfd: %s", err());
	expect_read(counter, "counter", 37);
	victim_finish();
}
