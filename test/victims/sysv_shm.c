/*
 * sysv_shm: a keyed System V segment attached twice (two addresses, one memory) and a private
 * one marked for removal (IPC_RMID) while attached. After restore: same ids, addresses, sizes,
 * contents; a write through one attach shows through the other; the private one is still marked.
 */
#include "victim.h"
#include <sys/ipc.h>
#include <sys/shm.h>

#define SIZE (64 * 1024)
static int keyed, private_id;
static unsigned char *a1, *a2, *p;

static void check_segment(int id, size_t size, int want_dest, const char *what)
{
	struct shmid_ds ds;
	CHECK(shmctl(id, IPC_STAT, &ds) == 0, "%s: shmctl(IPC_STAT, %d): %s", what, id, err());
	CHECK(ds.shm_segsz == size, "%s: size %zu", what, (size_t)ds.shm_segsz);
	CHECK(!!(ds.shm_perm.mode & SHM_DEST) == want_dest, "%s: SHM_DEST is %s", what, want_dest ? "gone" : "set");
}

int main(int argc, char **argv)
{
	victim_init(argc, argv);
	keyed = shmget(0x7e000000 | (getpid() & 0xffffff), SIZE, IPC_CREAT | IPC_EXCL | 0600);
	SETUP(keyed >= 0);
	a1 = shmat(keyed, NULL, 0);
	a2 = shmat(keyed, NULL, 0);
	SETUP(a1 != (void *)-1 && a2 != (void *)-1 && a1 != a2);
	fill_pattern(a1, SIZE, 17);
	private_id = shmget(IPC_PRIVATE, SIZE, 0600);
	SETUP(private_id >= 0);
	p = shmat(private_id, NULL, 0);
	SETUP(p != (void *)-1);
	fill_pattern(p, SIZE, 23);
	SETUP(shmctl(private_id, IPC_RMID, NULL) == 0);
	victim_ready();

	victim_wait(NULL);
	CHECK(pattern_mismatch(a1, SIZE, 17) < 0, "keyed segment content differs");
	CHECK(pattern_mismatch(a2, SIZE, 17) < 0, "keyed segment seen through its second attach differs");
	CHECK(pattern_mismatch(p, SIZE, 23) < 0, "private segment content differs");
	a1[100] ^= 0xff;
	CHECK(a2[100] == a1[100], "a write through one attach is not seen through the other");
	check_segment(keyed, SIZE, 0, "keyed");
	check_segment(private_id, SIZE, 1, "private");
	struct vma v;
	CHECK(find_vma(a1, &v) == 0 && strstr(v.path, "SYSV") && v.inode == (unsigned long)keyed, "keyed attach is '%s' inode %lu", v.path, v.inode);
	shmdt(a1);
	shmdt(a2);
	shmctl(keyed, IPC_RMID, NULL);
	victim_finish();
}
