import fs from "node:fs";
import { NR, PROT } from "../kernel/sys.js";
import { readStat, statField, readSysvShm, type Vma } from "../kernel/procfs.js";
import type { Injector } from "../kernel/inject.js";
import { FerryError } from "../errors.js";
import type { MmImage, VmaImage, VmaKind } from "../images/types.js";

export function vmaKind(v: Vma): VmaKind {
  if (v.path === "[vdso]") return "vdso";
  if (v.path.startsWith("[vvar")) return "vvar";
  const shared = v.perms[3] === "s";
  if (v.path.startsWith("/memfd:")) return "memfd";
  if (v.path.startsWith("/SYSV")) return "sysv";
  if (shared && v.path.startsWith("/dev/zero")) return "shmem";
  if (v.path === "" || v.path.startsWith("[")) return "anon";
  return "file";
}

function prot(perms: string): number {
  return (perms[0] === "r" ? PROT.READ : 0) | (perms[1] === "w" ? PROT.WRITE : 0) | (perms[2] === "x" ? PROT.EXEC : 0);
}

/** Does this VMA's content need to travel (as opposed to living in a file or the kernel)? */
function carriesPages(kind: VmaKind, shared: boolean): boolean {
  if (kind === "anon" || kind === "shmem" || kind === "memfd" || kind === "sysv") return true;
  if (kind === "file") return !shared; // private file mappings: only pages written (COW'd)
  return false;
}

export function describeVma(v: Vma, fileId = 0): VmaImage {
  const kind = vmaKind(v);
  const shared = v.perms[3] === "s";
  if (kind !== "vdso" && kind !== "vvar" && (v.flags.includes("io") || v.flags.includes("pf"))) {
    throw new FerryError("FERRY_UNSUPPORTED", `mapping ${v.start.toString(16)}-${v.end.toString(16)} ${v.path}: device (I/O) mappings cannot be dumped`);
  }
  return {
    ...(kind === "sysv" ? sysvSegment(v) : {}),
    start: v.start, end: v.end, prot: prot(v.perms), shared, kind, path: v.path,
    pgoff: v.offset, fileId, vmflags: v.flags, hasPages: carriesPages(kind, shared), inode: v.inode,
  };
}

/** A System V segment (its id is the mapping's inode), as /proc/sysvipc/shm describes it. */
function sysvSegment(v: Vma): Partial<VmaImage> {
  const seg = readSysvShm().get(v.inode);
  if (!seg) throw new FerryError("FERRY_DUMP_MEMORY", `mapping ${v.start.toString(16)}-${v.end.toString(16)} ${v.path}: System V segment ${v.inode} is not in /proc/sysvipc/shm`);
  return { shmKey: seg.key, shmSize: seg.size, shmMode: seg.mode };
}

export function dumpMmFields(pid: number, inj: Injector, vmas: VmaImage[]): MmImage {
  const stat = readStat(pid);
  const f = (n: number) => Number(statField(stat, n));
  const brk = inj.ok("brk(0)", NR.brk, 0);
  return {
    startCode: f(26), endCode: f(27), startStack: f(28),
    startData: f(45), endData: f(46), startBrk: f(47), brk,
    argStart: f(48), argEnd: f(49), envStart: f(50), envEnd: f(51),
    auxv: fs.readFileSync(`/proc/${pid}/auxv`),
    exePath: fs.readlinkSync(`/proc/${pid}/exe`),
    vmas,
  };
}
