/*
 * root: the process chroots into the directory that holds RESULTFILE (the
 * harness's fresh temp dir) and chdirs to its new "/". From then on it sees
 * RESULTFILE as "/<basename>", and writes RESULTFILE.ready and RESULTFILE
 * there; outside, they appear at their usual absolute paths. After restore "/"
 * is still that directory (same inode; "/.." is "/") and holds the marker.
 */
#include "victim.h"

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	struct stat dir_stat;
	char inside[PATH_MAX];
	SETUP(stat(victim_dir, &dir_stat) == 0);
	char *marker = victim_file("marker");
	SETUP(victim_write_text(marker, "inside the root") == 0);
	snprintf(inside, sizeof inside, "%s", strrchr(victim_result, '/'));
	SETUP(chroot(victim_dir) == 0);
	SETUP(chdir("/") == 0);
	victim_set_result_path(inside);
	victim_ready();

	victim_wait(NULL);

	struct stat root, parent;
	char text[64], cwd[PATH_MAX];
	CHECK(stat("/", &root) == 0 && root.st_ino == dir_stat.st_ino && root.st_dev == dir_stat.st_dev,
	      "'/' is inode %lu, expected the chroot directory's %lu (%s)", (unsigned long)root.st_ino,
	      (unsigned long)dir_stat.st_ino, err());
	CHECK(stat("/..", &parent) == 0 && parent.st_ino == root.st_ino, "'/..' leads out of the chroot");
	CHECK(read_text("/marker", text, sizeof text) > 0 && strcmp(text, "inside the root") == 0,
	      "/marker is not readable inside the root: %s", err());
	CHECK(getcwd(cwd, sizeof cwd) != NULL && strcmp(cwd, "/") == 0, "cwd is '%s', expected '/'", cwd);
	victim_finish();
}
