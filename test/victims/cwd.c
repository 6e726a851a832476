/*
 * cwd: the process creates "cwd dir/sub dir" next to RESULTFILE, moves into it
 * and leaves a marker file there. After restore getcwd() and /proc/self/cwd
 * name that directory, "." is the same inode, and the marker opens by its
 * relative name.
 */
#include "victim.h"

static char recorded[PATH_MAX];
static struct stat recorded_stat;

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	char *top = victim_file("cwd dir");
	SETUP(mkdir(top, 0755) == 0);
	SETUP(chdir(top) == 0);
	SETUP(mkdir("sub dir", 0755) == 0);
	SETUP(chdir("sub dir") == 0);
	SETUP(victim_write_text("marker", "here") == 0);
	SETUP(getcwd(recorded, sizeof recorded) != NULL);
	SETUP(stat(".", &recorded_stat) == 0);
	victim_ready();

	victim_wait(NULL);

	char now[PATH_MAX], link[PATH_MAX], text[16];
	struct stat st;
	if (getcwd(now, sizeof now) == NULL)
		fail("getcwd: %s", err());
	else
		CHECK(strcmp(now, recorded) == 0, "getcwd is '%s', expected '%s'", now, recorded);
	CHECK(strcmp(link_of("/proc/self/cwd", link, sizeof link), recorded) == 0, "/proc/self/cwd is '%s', expected '%s'",
	      link, recorded);
	CHECK(stat(".", &st) == 0 && st.st_ino == recorded_stat.st_ino && st.st_dev == recorded_stat.st_dev,
	      "'.' is not the directory it was (inode %lu, expected %lu)", (unsigned long)st.st_ino,
	      (unsigned long)recorded_stat.st_ino);
	CHECK(read_text("marker", text, sizeof text) == 4 && strcmp(text, "here") == 0,
	      "the marker file is not readable by its relative name: %s", err());
	victim_finish();
}
