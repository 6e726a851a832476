import fs from "node:fs";
import { FerryError } from "../errors.js";
import { NR, PROT, sys } from "../kernel/sys.js";
import { readSysvShm } from "../kernel/procfs.js";
import type { Injector } from "../kernel/inject.js";
import type { VmaImage } from "../images/types.js";

const IPC_CREAT = 0o1000, IPC_EXCL = 0o2000, IPC_RMID = 0, SHM_DEST = 0o1000;
const SHM_RDONLY = 0o10000, SHM_EXEC = 0o100000;
const NEXT_ID = "/proc/sys/kernel/shm_next_id";

/**
 * The segment must exist with its id: it still does on the host that made the dump unless it was
 * removed; otherwise it is created again with the same key, size and mode, and the kernel is asked
 * for the same id (shm_next_id, as CRIU does).
 */
function ensureSegment(v: VmaImage): void {
  const id = v.inode;
  const seg = readSysvShm().get(id);
  if (seg) {
    if (seg.key === v.shmKey && seg.size === v.shmSize) return;
    throw new FerryError("FERRY_SYSV", `System V segment ${id} exists with another key or size (key ${seg.key}, ${seg.size} bytes): cannot restore ${v.path}`);
  }
  // The kernel takes this id for the next segment made, then forgets it (it refuses a write of -1).
  fs.writeFileSync(NEXT_ID, String(id));
  const got = sys(`shmget(key ${v.shmKey})`, NR.shmget, v.shmKey ?? 0, v.shmSize ?? 0, IPC_CREAT | IPC_EXCL | ((v.shmMode ?? 0o600) & 0o777));
  if (got !== id) {
    sys("shmctl(IPC_RMID)", NR.shmctl, got, IPC_RMID, 0);
    throw new FerryError("FERRY_SYSV", `System V segment ${id} came back as ${got}`);
  }
}

/**
 * Attach a System V segment where the image had it (one attach covers every VMA it was split
 * into); writable while its pages are still to be filled.
 */
export function attachSysv(inj: Injector, v: VmaImage, filling: boolean, attached: Set<string>): void {
  const base = v.start - v.pgoff;
  const key = `${v.inode}@${base}`;
  if (attached.has(key)) {
    inj.ok("mprotect", NR.mprotect, v.start, v.end - v.start, filling ? v.prot | PROT.READ | PROT.WRITE : v.prot);
    return;
  }
  ensureSegment(v);
  const flags = (filling || v.prot & PROT.WRITE ? 0 : SHM_RDONLY) | (v.prot & PROT.EXEC ? SHM_EXEC : 0);
  const at = inj.ok(`shmat(${v.inode})`, NR.shmat, v.inode, base, flags);
  if (at !== base) throw new FerryError("FERRY_RESTORE", `System V segment ${v.inode} attached at 0x${at.toString(16)}, not 0x${base.toString(16)}`);
  attached.add(key);
  // Marked for removal before the dump: it stays while attached, and goes with its last user.
  if ((v.shmMode ?? 0) & SHM_DEST) sys("shmctl(IPC_RMID)", NR.shmctl, v.inode, IPC_RMID, 0);
}
