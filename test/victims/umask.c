/*
 * umask: the process sets umask 035. After restore umask() and the Umask line
 * of /proc/self/status say 035, and a new file gets mode 0642.
 */
#include "victim.h"

#define MASK 035

static void tick(void)
{
	mode_t now = umask(MASK);
	umask(now);
	CHECK(now == MASK, "umask is %03o, expected %03o", now, MASK);
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	char *probe = victim_file("probe");
	umask(MASK);
	victim_ready();

	victim_wait(tick);

	tick();
	char status[16];
	CHECK(proc_field("/proc/self/status", "Umask", status, sizeof status) == 0 && strtol(status, NULL, 8) == MASK,
	      "Umask in /proc/self/status is '%s', expected %04o", status, MASK);
	struct stat st;
	CHECK(victim_write_text(probe, "x") == 0, "creating %s: %s", probe, err());
	CHECK(stat(probe, &st) == 0 && (st.st_mode & 0777) == (0666 & ~MASK), "a new file got mode %03o, expected %03o",
	      st.st_mode & 0777, 0666 & ~MASK);
	victim_finish();
}
