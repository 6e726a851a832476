/*
 * victim.h: the protocol every victim of ferry's zoo follows (header-only).
 *
 *   victim_NAME RESULTFILE [extra args]
 *
 * A victim sets up one piece of state, records what it expects in its own
 * memory, calls victim_ready() (which creates RESULTFILE.ready and leaves no fd
 * open), then waits while exercising that state. Meanwhile it may be frozen,
 * dumped, killed and re-created by ferry with the same PID, possibly twice.
 * SIGTERM (handler without SA_RESTART) ends the wait: the victim blocks
 * SIGTERM (victim_begin_check), checks everything again, then victim_finish()
 * writes "PASS\n" or "FAIL: <reason>\n" to RESULTFILE and exits 0 or 1.
 *
 * The harness may send SIGTERM more than once (a signal that arrives just
 * before a restarted syscall is re-entered would otherwise be lost): the
 * handler only sets a flag, and the check phase runs with SIGTERM blocked.
 *
 * Setup errors (before ready) write "FAIL: setup: ..." and exit 1 without
 * creating the ready file. During the run, fail() keeps the first failure;
 * every unexpected syscall result must be reported through it.
 *
 * victim_ready() also records which fds are open and victim_finish() checks
 * the set is the same, so a restore that leaks or loses fds fails every victim.
 */
#ifndef FERRY_VICTIM_H
#define FERRY_VICTIM_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#define VPAGE 4096UL
#define VICTIM_MAX_FD 4096

static char victim_result[PATH_MAX];     /* RESULTFILE, as this process sees it */
static char victim_dir[PATH_MAX];        /* the directory that holds RESULTFILE */
static volatile sig_atomic_t victim_stop; /* set by the SIGTERM handler */
static char victim_failure[1024];        /* first failure, empty while all is well */
static unsigned char victim_fds[VICTIM_MAX_FD]; /* fds open at victim_ready() */

/* ---------------------------------------------------------------- failures */

/* "errno 4 (Interrupted system call)", for messages. */
static inline const char *err(void)
{
	static char text[96];
	int saved = errno;
	snprintf(text, sizeof text, "errno %d (%s)", saved, strerror(saved));
	errno = saved;
	return text;
}

static inline int failed(void) { return victim_failure[0] != 0; }

/* Records a failure; only the first one is kept (it is usually the cause). */
static inline __attribute__((format(printf, 1, 2))) void fail(const char *fmt, ...)
{
	if (failed())
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(victim_failure, sizeof victim_failure, fmt, ap);
	va_end(ap);
	for (char *c = victim_failure; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	if (!failed())
		strcpy(victim_failure, "(empty failure message)");
}

#define CHECK(cond, ...) do { if (!(cond)) fail(__VA_ARGS__); } while (0)

/* Writes TEXT to PATH in one write(); leaves no fd open. */
static inline int victim_write_text(const char *path, const char *text)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0666);
	if (fd < 0)
		return -1;
	size_t len = strlen(text);
	ssize_t n = write(fd, text, len);
	int saved = errno;
	if (close(fd) != 0 || n != (ssize_t)len) {
		errno = n < 0 ? saved : EIO;
		return -1;
	}
	return 0;
}

static inline __attribute__((noreturn)) void victim_write_result_and_exit(void)
{
	char text[sizeof victim_failure + 16];
	if (failed())
		snprintf(text, sizeof text, "FAIL: %s\n", victim_failure);
	else
		strcpy(text, "PASS\n");
	if (victim_write_text(victim_result, text) != 0)
		_exit(3);
	exit(failed() ? 1 : 0);
}

/* Setup went wrong: report it and exit without ever becoming ready. */
static inline __attribute__((noreturn, format(printf, 1, 2))) void setup_failed(const char *fmt, ...)
{
	char reason[sizeof victim_failure - 16];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	victim_failure[0] = 0;
	fail("setup: %s", reason);
	victim_write_result_and_exit();
}

/* SETUP(fd >= 0): a setup step that must hold, reported with errno. */
#define SETUP(cond) do { if (!(cond)) setup_failed("%s:%d: %s is false, %s", \
	__FILE__, __LINE__, #cond, err()); } while (0)

/* ------------------------------------------------------------ fd set check */

static inline void victim_list_fds(unsigned char *open_fds)
{
	int saved = errno;
	for (int fd = 0; fd < VICTIM_MAX_FD; fd++)
		open_fds[fd] = fcntl(fd, F_GETFD) != -1;
	errno = saved;
}

static inline void victim_check_fds(void)
{
	unsigned char now[VICTIM_MAX_FD];
	victim_list_fds(now);
	for (int fd = 0; fd < VICTIM_MAX_FD; fd++) {
		if (now[fd] == victim_fds[fd])
			continue;
		char link[64], target[PATH_MAX] = "?";
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n >= 0)
			target[n] = 0;
		if (now[fd])
			fail("fd %d is open now (-> %s) but was not at ready", fd, target);
		else
			fail("fd %d was open at ready but is closed now", fd);
	}
}

/* ------------------------------------------------------------ the protocol */

static void victim_on_sigterm(int sig)
{
	(void)sig;
	victim_stop = 1;
}

/*
 * Reads RESULTFILE from argv, closes every fd above 2 (whatever started us may
 * have leaked some: a victim holds only the fds it opens itself) and installs
 * the SIGTERM handler.
 */
static inline void victim_init(int argc, char **argv)
{
	if (argc < 2 || argv[1][0] != '/' || strlen(argv[1]) >= sizeof victim_result - 8) {
		fprintf(stderr, "usage: %s /absolute/RESULTFILE [args]\n", argv[0]);
		exit(2);
	}
	if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
		for (int fd = 3; fd < VICTIM_MAX_FD; fd++)
			close(fd);
	strcpy(victim_result, argv[1]);
	strcpy(victim_dir, argv[1]);
	char *slash = strrchr(victim_dir, '/');
	slash[slash == victim_dir ? 1 : 0] = 0;

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = victim_on_sigterm;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: SIGTERM must interrupt blocking calls */
	SETUP(sigaction(SIGTERM, &sa, NULL) == 0);
}

/* For a victim that changes its root: where RESULTFILE is now. */
static inline void victim_set_result_path(const char *path)
{
	snprintf(victim_result, sizeof victim_result, "%s", path);
}

/* A path in RESULTFILE's directory (malloc'ed; call before victim_ready). */
static inline char *victim_file(const char *name)
{
	char *path = malloc(strlen(victim_dir) + strlen(name) + 2);
	SETUP(path != NULL);
	sprintf(path, "%s/%s", victim_dir, name);
	return path;
}

/* Setup is done: record the fd set, then tell the harness. */
static inline void victim_ready(void)
{
	char path[sizeof victim_result + 8];
	if (failed())
		setup_failed("self-check before ready: %s", victim_failure);
	victim_list_fds(victim_fds);
	snprintf(path, sizeof path, "%s.ready", victim_result);
	if (victim_write_text(path, "ready") != 0)
		setup_failed("cannot create %s: %s", path, err());
}

/* The wait is over: block SIGTERM so repeated ones cannot disturb the checks. */
static inline void victim_begin_check(void)
{
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &term, NULL) != 0)
		fail("sigprocmask(SIG_BLOCK, SIGTERM): %s", err());
}

/* Checks the fd set, writes PASS or FAIL, exits. */
static inline __attribute__((noreturn)) void victim_finish(void)
{
	victim_check_fds();
	victim_write_result_and_exit();
}

/*
 * A short sleep in a wait loop. EINTR is normal here (SIGTERM, or another
 * signal the victim handles); any other error, e.g. errno 516 from a botched
 * restart, is a failure. Spurious EINTR is judged only by the blocked_* victims.
 */
static inline void victim_nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
		fail("nanosleep(%ld ms) in the wait loop: %s", ms, err());
}

/* The usual wait: call TICK (if any) and nap 1 ms until SIGTERM, then block it. */
static inline void victim_wait(void (*tick)(void))
{
	while (!victim_stop) {
		if (tick && !failed())
			tick();
		victim_nap_ms(1);
	}
	victim_begin_check();
}

/* ------------------------------------------------------------ data helpers */

static inline uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Fills LEN bytes (multiple of 8) with a pattern that depends on SEED and position. */
static inline void fill_pattern(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = mix64(seed * 0x100000001b3ULL + i);
}

/* Offset of the first byte that differs from the pattern, or -1. */
static inline long pattern_mismatch(const void *p, size_t len, uint64_t seed)
{
	const volatile uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != mix64(seed * 0x100000001b3ULL + i))
			return (long)(i * 8);
	return -1;
}

/* Offset of the first non-zero byte, or -1. */
static inline long zero_mismatch(const void *p, size_t len)
{
	const volatile uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != 0)
			return (long)(i * 8);
	return -1;
}

static inline uint64_t fnv1a(const void *p, size_t len)
{
	const unsigned char *c = p;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ c[i]) * 0x100000001b3ULL;
	return h;
}

static inline int64_t now_ns(clockid_t clock)
{
	struct timespec ts;
	if (clock_gettime(clock, &ts) != 0) {
		fail("clock_gettime(%d): %s", (int)clock, err());
		return 0;
	}
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int64_t ts_ns(struct timespec ts) { return ts.tv_sec * 1000000000LL + ts.tv_nsec; }

/*
 * Is LEFT_NS a sane time left on a countdown of TOTAL_NS that had already run
 * BEFORE_NS when the victim became ready and was started ELAPSED_NS ago? The
 * time the process spent frozen may count or not (the kernel's own stop/cont
 * semantics count it, CRIU's restore does not), so the bounds are: it ran no
 * faster than the clock, and it gave back none of the time it had counted.
 */
static inline void check_time_left(const char *what, int64_t left_ns, int64_t total_ns, int64_t before_ns,
				   int64_t elapsed_ns)
{
	int64_t most = total_ns - before_ns + 5000000, least = total_ns - elapsed_ns - 500000000;
	CHECK(left_ns <= most && left_ns >= least,
	      "%s has %lld.%09lld s left of %lld s, %lld.%09lld s after it started; expected between %lld.%09lld and %lld.%09lld",
	      what, (long long)(left_ns / 1000000000), (long long)(left_ns % 1000000000), (long long)(total_ns / 1000000000),
	      (long long)(elapsed_ns / 1000000000), (long long)(elapsed_ns % 1000000000), (long long)(least / 1000000000),
	      (long long)(least % 1000000000), (long long)(most / 1000000000), (long long)(most % 1000000000));
}

/* Reads a whole (small, e.g. /proc) file into BUF, NUL-terminated. Length or -1. */
static inline ssize_t read_text(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0) {
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0 || len + n >= cap - 1) {
			len += n;
			break;
		}
		len += n;
	}
	close(fd);
	buf[len] = 0;
	return (ssize_t)len;
}

/* The value after "KEY:" in a "Key:\tvalue" file such as /proc/self/status. */
static inline int proc_field(const char *path, const char *key, char *out, size_t cap)
{
	static char text[16384];
	if (read_text(path, text, sizeof text) < 0)
		return -1;
	size_t klen = strlen(key);
	for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			char *v = line + klen + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			size_t n = strcspn(v, "\n");
			if (n >= cap)
				n = cap - 1;
			memcpy(out, v, n);
			out[n] = 0;
			return 0;
		}
	}
	errno = ENOENT;
	return -1;
}

static inline int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The registrations in epoll fd FD's fdinfo ("tfd: N events: E data: D;" each, without the kernel
 * pointers that follow), sorted: the kernel lists them in the order of its struct file addresses,
 * which no restore can (or needs to) reproduce.
 */
static inline void epoll_registrations(int fd, char *out, size_t cap)
{
	static char text[8192];
	char path[64], *lines[64];
	size_t len = 0, count = 0;
	out[0] = 0;
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	if (read_text(path, text, sizeof text) < 0) {
		fail("read %s: %s", path, err());
		return;
	}
	for (char *line = strstr(text, "tfd:"); line && count < 64; line = strstr(line + 1, "\ntfd:"))
		lines[count++] = *line == '\n' ? line + 1 : line;
	for (size_t i = 0; i < count; i++) {
		char *pos = strstr(lines[i], " pos:");
		if (pos)
			*pos = 0;
	}
	qsort(lines, count, sizeof lines[0], compare_strings);
	for (size_t i = 0; i < count && len + strlen(lines[i]) + 2 < cap; i++)
		len += sprintf(out + len, "%s;", lines[i]);
}

/* An IPv4 socket's own name (PEER 0) or its peer's (PEER 1) is still WANT, address and port. */
static inline void same_inet_name(int fd, const struct sockaddr_in *want, int peer, const char *what)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int r = peer ? getpeername(fd, (struct sockaddr *)&a, &len) : getsockname(fd, (struct sockaddr *)&a, &len);
	CHECK(r == 0 && a.sin_port == want->sin_port && a.sin_addr.s_addr == want->sin_addr.s_addr,
	      "%s: %s is %s:%d, expected port %d (%s)", what, peer ? "peer" : "name", inet_ntoa(a.sin_addr),
	      ntohs(a.sin_port), ntohs(want->sin_port), r == 0 ? "no error" : err());
}

/* One line of /proc/self/maps. */
struct vma {
	unsigned long start, end, offset, inode;
	char perms[5];
	char path[PATH_MAX];
};

static char victim_maps_buf[1 << 18];

static inline int parse_maps_line(const char *line, struct vma *v)
{
	int pathpos = 0;
	memset(v, 0, sizeof *v);
	if (sscanf(line, "%lx-%lx %4s %lx %*x:%*x %lu%n", &v->start, &v->end, v->perms,
		   &v->offset, &v->inode, &pathpos) < 5)
		return -1;
	while (line[pathpos] == ' ' || line[pathpos] == '\t')
		pathpos++;
	size_t n = strcspn(line + pathpos, "\n");
	if (pathpos && n < sizeof v->path)
		memcpy(v->path, line + pathpos, n);
	return 0;
}

/* The mapping that contains ADDR; 0 if found, -1 if not (or on error, with errno). */
static inline int find_vma(const void *addr, struct vma *out)
{
	unsigned long a = (unsigned long)addr;
	if (read_text("/proc/self/maps", victim_maps_buf, sizeof victim_maps_buf) < 0)
		return -1;
	for (char *line = victim_maps_buf; *line; ) {
		if (parse_maps_line(line, out) == 0 && out->start <= a && a < out->end)
			return 0;
		char *nl = strchr(line, '\n');
		if (!nl)
			break;
		line = nl + 1;
	}
	errno = ENOENT;
	return -1;
}

/* FIELD ("Rss", "VmFlags", ...) of the smaps entry that contains ADDR. */
static inline int smaps_field(const void *addr, const char *field, char *out, size_t cap)
{
	unsigned long a = (unsigned long)addr;
	int inside = 0;
	size_t flen = strlen(field);
	if (read_text("/proc/self/smaps", victim_maps_buf, sizeof victim_maps_buf) < 0)
		return -1;
	for (char *line = victim_maps_buf; *line; ) {
		struct vma v;
		char *nl = strchr(line, '\n');
		if (parse_maps_line(line, &v) == 0 && strchr(line, '-') < strchr(line, ' '))
			inside = v.start <= a && a < v.end;
		else if (inside && strncmp(line, field, flen) == 0 && line[flen] == ':') {
			char *val = line + flen + 1;
			while (*val == ' ' || *val == '\t')
				val++;
			size_t n = nl ? (size_t)(nl - val) : strlen(val);
			if (n >= cap)
				n = cap - 1;
			memcpy(out, val, n);
			out[n] = 0;
			return 0;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	errno = ENOENT;
	return -1;
}

/* Does the space-separated word list LIST contain WORD? */
static inline int has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == 0 || p[n] == ' '))
			return 1;
	return 0;
}

/* readlink() into a NUL-terminated buffer; "" on error. */
static inline const char *link_of(const char *path, char *buf, size_t cap)
{
	ssize_t n = readlink(path, buf, cap - 1);
	buf[n < 0 ? 0 : n] = 0;
	return buf;
}

static inline const char *fd_link(int fd, char *buf, size_t cap)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	return link_of(path, buf, cap);
}

#endif
