/*
 * inotify: watches on a directory (IN_CREATE) and on a file (IN_MODIFY), with a gap in the watch
 * numbers (a removed watch). After restore the same wds report new events, and nothing else is
 * queued (no IN_IGNORED left over from rebuilding the numbers).
 */
#include "victim.h"
#include <sys/inotify.h>

static int ino;
static int wd_dir, wd_file, wd_removed;
static char *dir, *file;

static void expect_event(int wd, uint32_t mask, const char *name, const char *what)
{
	char buf[4096] __attribute__((aligned(8)));
	ssize_t n = -1;
	for (int i = 0; i < 500 && n < 0; i++) {
		n = read(ino, buf, sizeof buf);
		if (n < 0 && errno != EAGAIN)
			break;
		if (n < 0)
			victim_nap_ms(1);
	}
	if (n < (ssize_t)sizeof(struct inotify_event)) {
		fail("%s: no event (%s)", what, err());
		return;
	}
	struct inotify_event *e = (struct inotify_event *)buf;
	CHECK(e->wd == wd && (e->mask & mask) && (!name || (e->len && strcmp(e->name, name) == 0)),
	      "%s: event wd %d mask %x name '%s', expected wd %d mask %x", what, e->wd, e->mask, e->len ? e->name : "", wd, mask);
	CHECK((size_t)n == sizeof *e + e->len, "%s: %zd bytes of events, more than one event", what, n);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	dir = victim_file("watched");
	file = victim_file("watched-file");
	SETUP(mkdir(dir, 0755) == 0);
	int f = open(file, O_CREAT | O_WRONLY, 0644);
	SETUP(f >= 0);
	close(f);
	ino = inotify_init1(IN_NONBLOCK);
	SETUP(ino >= 0);
	wd_dir = inotify_add_watch(ino, dir, IN_CREATE);
	wd_removed = inotify_add_watch(ino, "/", IN_ACCESS);
	wd_file = inotify_add_watch(ino, file, IN_MODIFY);
	SETUP(wd_dir > 0 && wd_removed > 0 && wd_file > wd_removed);
	SETUP(inotify_rm_watch(ino, wd_removed) == 0);
	char drain[4096];
	while (read(ino, drain, sizeof drain) > 0)
		;
	victim_ready();

	victim_wait(NULL);
	char buf[64];
	CHECK(read(ino, buf, sizeof buf) < 0 && errno == EAGAIN, "events queued before any change: %s", err());
	char *created = malloc(strlen(dir) + 16);
	sprintf(created, "%s/new", dir);
	int c = open(created, O_CREAT | O_WRONLY, 0644);
	CHECK(c >= 0, "create: %s", err());
	close(c);
	expect_event(wd_dir, IN_CREATE, "new", "directory watch");
	int w = open(file, O_WRONLY | O_APPEND);
	CHECK(w >= 0 && write(w, "x", 1) == 1, "modify: %s", err());
	close(w);
	expect_event(wd_file, IN_MODIFY, NULL, "file watch");
	victim_finish();
}
