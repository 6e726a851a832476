import fs from "node:fs";
import { attachSysv } from "./sysv.js";
import { FerryError } from "../errors.js";
import { NR, MAP, PROT, O, PAGE_SIZE, cstring } from "../kernel/sys.js";
import { readMaps, type Vma } from "../kernel/procfs.js";
import { vdsoBlock, SCRATCH_SIZE, BATCH_AREA, type Injector, type SyscallBatch } from "../kernel/inject.js";
import type { MmImage, PageMapImage, VmaImage } from "../images/types.js";

const TASK_END = 0x7ffffffff000;
const MADVISE: Record<string, number> = { dc: 10, dd: 16, hg: 14, nh: 15, mg: 12, wf: 18 };

/** Pick a scratch address that is free both in the image's layout and in the stub's. */
export function placeScratch(inj: Injector, image: VmaImage[]): number {
  const size = SCRATCH_SIZE + BATCH_AREA;
  const taken = [...image].sort((a, b) => a.start - b.start);
  let prevEnd = 0x100000;
  const gaps: [number, number][] = [];
  for (const v of taken) {
    if (v.start - prevEnd >= size + 2 * PAGE_SIZE) gaps.push([prevEnd, v.start]);
    prevEnd = Math.max(prevEnd, v.end);
  }
  gaps.push([prevEnd, TASK_END]);
  gaps.sort((a, b) => b[1] - b[0] - (a[1] - a[0])); // widest first
  for (const [s, e] of gaps) {
    for (const addr of [s + PAGE_SIZE, e - size - PAGE_SIZE, Math.floor((s + e) / 2 / PAGE_SIZE) * PAGE_SIZE]) {
      if (addr < s || addr + size > e) continue;
      if (inj.tryMapScratch(SCRATCH_SIZE, addr) >= 0n) return inj.scratch;
    }
  }
  throw new FerryError("FERRY_RESTORE", "no room for ferry's scratch page in the restored address space");
}

/**
 * Unmap everything the stub inherited (from ferry's own process, or from its restored parent),
 * but the scratch area, the vDSO and the mappings `kept` from the parent.
 */
export function clearAddressSpace(inj: Injector, kept: Set<VmaImage> = new Set()): void {
  const keep = [[inj.scratch, inj.scratchEnd], ...[...kept].map((v) => [v.start, v.end])];
  const block = vdsoBlock(readMaps(inj.pid));
  if (block.length) keep.push([block[0].start, block[block.length - 1].end]);
  keep.sort((a, b) => a[0] - b[0]);
  const b = inj.batch();
  let from = 0;
  for (const [s, e] of keep) {
    if (s > from) b.add("munmap", NR.munmap, from, s - from);
    from = e;
  }
  b.add("munmap", NR.munmap, from, TASK_END - from);
  b.run();
}

/**
 * Move the stub's vDSO block (the same kernel's, checked by the caller) to where the image had it:
 * the restored code keeps pointers into it.
 */
export function moveVdso(inj: Injector, image: VmaImage[]): void {
  const want = image.filter((v) => v.kind === "vdso" || v.kind === "vvar").sort((a, b) => a.start - b.start);
  const have = vdsoBlock(readMaps(inj.pid));
  if (!want.length) return;
  if (want.length !== have.length || want.some((w, i) => w.end - w.start !== have[i].end - have[i].start || w.path !== have[i].path)) {
    throw new FerryError("FERRY_VDSO_MISMATCH", `the vDSO layout differs from the image's (${want.map((w) => w.path).join(" ")}): restore on the kernel that made the dump`);
  }
  if (want[0].start === have[0].start) return;
  const vdsoOffset = inj.site - have.find((h) => h.path === "[vdso]")!.start;
  const overlap = want[0].start < have[have.length - 1].end && have[0].start < want[want.length - 1].end;
  let cur: Vma[] | { start: number; end: number; path: string }[] = have;
  if (overlap) {
    // Park the block somewhere free first, so no move overlaps itself.
    const size = have[have.length - 1].end - have[0].start;
    const tmp = inj.ok("mmap", NR.mmap, 0, size, PROT.NONE, MAP.PRIVATE | MAP.ANONYMOUS, -1, 0);
    cur = moveBlock(inj, have, tmp, vdsoOffset);
  }
  moveBlock(inj, cur, want[0].start, vdsoOffset);
}

function moveBlock(inj: Injector, from: { start: number; end: number; path: string }[], to: number, vdsoOffset: number) {
  const MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2;
  const base = from[0].start;
  const moved = from.map((v) => {
    const dst = to + (v.start - base);
    const len = v.end - v.start;
    inj.ok(`mremap ${v.path}`, NR.mremap, v.start, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    if (v.path === "[vdso]") inj.site = dst + vdsoOffset;
    return { start: dst, end: dst + len, path: v.path };
  });
  return moved;
}

/** Shared memory objects already mapped in the tree, by inode: where to find each again. */
export type SharedObjects = Map<number, { pid: number; vma: VmaImage }>;

/** Map every VMA of the image at its address, with write access where pages are still to come. */
export function mapVmas(inj: Injector, mm: MmImage, fill: Set<VmaImage>, objects: SharedObjects = new Map(), kept: Set<VmaImage> = new Set()): void {
  const sysvAttached = new Set<string>();
  const files = openMappedFiles(inj, mm.vmas.filter((v) => v.kind === "file" && !kept.has(v)));
  // The mappings go in batches; a kind that needs an answer first (an fd) runs what came before.
  let b = inj.batch();
  const landed: { v: VmaImage; i: number }[] = [];
  const flush = () => {
    if (!b.size) return;
    b.run();
    checkLanded(b, landed);
    landed.length = 0;
    b = inj.batch();
  };
  for (const v of mm.vmas) {
    if (v.kind === "vdso" || v.kind === "vvar") continue;
    if (kept.has(v)) {
      // there since the clone, with its protections: writable only while its own pages come
      if (fill.has(v) && (v.prot | PROT.READ | PROT.WRITE) !== v.prot) b.add("mprotect", NR.mprotect, v.start, v.end - v.start, v.prot | PROT.READ | PROT.WRITE);
      continue;
    }
    if (v.kind === "sysv") {
      flush();
      attachSysv(inj, v, fill.has(v), sysvAttached);
      adviseVma(b, v);
      continue;
    }
    const len = v.end - v.start;
    const prot = fill.has(v) ? v.prot | PROT.READ | PROT.WRITE : v.prot;
    let flags = (v.shared ? MAP.SHARED : MAP.PRIVATE) | MAP.FIXED;
    if (v.vmflags.includes("gd")) flags |= MAP.GROWSDOWN;
    let fd = -1;
    let ownFd = false;
    const sameObject = (v.kind === "shmem" || v.kind === "memfd") && v.inode ? objects.get(v.inode) : undefined;
    if (sameObject) {
      flush(); // the object's first mapping may still be in the batch
      fd = openMapFiles(inj, sameObject);
      ownFd = true;
    } else if (v.kind === "anon" || v.kind === "shmem") {
      flags |= MAP.ANONYMOUS;
    } else if (v.kind === "memfd") {
      flush();
      const name = v.path.replace(/^\/memfd:/, "").replace(/ \(deleted\)$/, "");
      fd = inj.ok("memfd_create", NR.memfd_create, inj.put(0, cstring(name)), 1 /* MFD_CLOEXEC */);
      ownFd = true;
      b.add("ftruncate", NR.ftruncate, fd, v.pgoff + len);
    } else if (v.kind === "file") {
      fd = files.get(fileKey(v))!;
    } else {
      throw new FerryError("FERRY_UNSUPPORTED", `mapping kind ${v.kind} at 0x${v.start.toString(16)} cannot be restored`);
    }
    landed.push({ v, i: b.add(`mmap 0x${v.start.toString(16)} ${v.path}`, NR.mmap, v.start, len, prot, flags, fd, v.pgoff) });
    if (ownFd) b.add("close", NR.close, fd);
    if ((v.kind === "shmem" || v.kind === "memfd") && v.inode && !sameObject) objects.set(v.inode, { pid: inj.pid, vma: v });
    adviseVma(b, v);
  }
  for (const fd of files.values()) b.add("close", NR.close, fd);
  flush();
}

/** Throws unless each mmap of `b` (run; index i of each) put its mapping where the image had it. */
export function checkLanded(b: SyscallBatch, landed: { v: VmaImage; i: number }[], what = "mapping"): void {
  for (const { v, i } of landed) {
    const at = Number(b.result(i));
    if (at !== v.start) throw new FerryError("FERRY_RESTORE", `${what} landed at 0x${at.toString(16)} instead of 0x${v.start.toString(16)}`);
  }
}

const fileMode = (v: VmaImage) => (v.shared && v.prot & PROT.WRITE ? O.RDWR : O.RDONLY);
const fileKey = (v: VmaImage) => `${fileMode(v)} ${v.path}`;

/**
 * Each mapped file opened once inside the task (a library's 4-5 mappings share one open), in
 * batches: its fd there, by mode and path.
 */
function openMappedFiles(inj: Injector, vmas: VmaImage[]): Map<string, number> {
  const fds = new Map<string, number>();
  const wanted = new Map<string, VmaImage>();
  for (const v of vmas) {
    if (v.path.endsWith(" (deleted)")) throw new FerryError("FERRY_UNSUPPORTED", `mapping of deleted file ${v.path} is not supported yet`);
    if (!wanted.has(fileKey(v))) wanted.set(fileKey(v), v);
  }
  const pending = [...wanted];
  while (pending.length) {
    const b = inj.batch();
    const asked: { key: string; i: number }[] = [];
    while (pending.length && b.fits(cstring(pending[0][1].path).length)) {
      const [key, v] = pending.shift()!;
      const cannot = (errno: number) => new FerryError("FERRY_FILE", `cannot open ${v.path} to map it at 0x${v.start.toString(16)} (errno ${errno}): did it move since the dump?`);
      asked.push({ key, i: b.add(cannot, NR.openat, -100, b.put(cstring(v.path)), fileMode(v) | O.CLOEXEC, 0) });
    }
    b.run();
    for (const { key, i } of asked) fds.set(key, Number(b.result(i)));
  }
  return fds;
}

/** The VmFlags that madvise() sets (dontfork, dontdump, hugepage...), again on a new mapping. */
export function adviseVma(b: SyscallBatch, v: VmaImage): void {
  for (const f of v.vmflags) if (f in MADVISE) b.try(NR.madvise, v.start, v.end - v.start, MADVISE[f]);
}

/** An fd, inside the task, of the object an earlier mapping maps (through /proc/self/map_files). */
function openMapFiles(inj: Injector, at: { pid: number; vma: VmaImage }): number {
  const v = at.vma;
  const name = `/proc/${at.pid === inj.pid ? "self" : at.pid}/map_files/${v.start.toString(16)}-${v.end.toString(16)}`;
  return inj.ok(`open ${name}`, NR.openat, -100, inj.put(0, cstring(name)), O.RDWR | O.CLOEXEC, 0);
}

/** prctl(PR_SET_MM, PR_SET_MM_MAP): code/data/brk/stack/args/env/auxv and the exe link at once. */
export function setMmFields(inj: Injector, mm: MmImage): void {
  const PR_SET_MM = 35, PR_SET_MM_MAP = 14;
  const auxvAt = 1024;
  const auxvAddr = inj.put(auxvAt, mm.auxv);
  let exeFd = -1;
  // A child forked from its restored parent has the right exe already: the kernel refuses to
  // replace an exe file that is still mapped (EBUSY), and there is nothing to replace.
  if (currentExe(inj.pid) !== mm.exePath) {
    const r = inj.call(NR.openat, -100, inj.put(2048, cstring(mm.exePath)), O.RDONLY | O.CLOEXEC, 0);
    if (r >= 0n) exeFd = Number(r);
  }
  const s = Buffer.alloc(104);
  const fields = [mm.startCode, mm.endCode, mm.startData, mm.endData, mm.startBrk, mm.brk, mm.startStack, mm.argStart, mm.argEnd, mm.envStart, mm.envEnd];
  fields.forEach((v, i) => s.writeBigUInt64LE(BigInt(v), i * 8));
  s.writeBigUInt64LE(BigInt(auxvAddr), 88);
  s.writeUInt32LE(mm.auxv.length, 96);
  s.writeInt32LE(exeFd, 100);
  inj.ok("prctl(PR_SET_MM_MAP)", NR.prctl, PR_SET_MM, PR_SET_MM_MAP, inj.put(0, s), s.length, 0);
  if (exeFd >= 0) inj.ok("close", NR.close, exeFd);
}

function currentExe(pid: number): string {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return "";
  }
}

export function vmasToFill(mm: MmImage, pagemap: PageMapImage): Set<VmaImage> {
  const out = new Set<VmaImage>();
  const sorted = [...mm.vmas].sort((a, b) => a.start - b.start);
  for (const run of pagemap.runs) {
    const end = run.vaddr + run.nrPages * PAGE_SIZE;
    const hits = sorted.filter((v) => v.start < end && run.vaddr < v.end);
    let covered = 0;
    for (const v of hits) {
      if (!v.hasPages) throw new FerryError("FERRY_IMAGE_CORRUPT", `pagemap: pages at 0x${run.vaddr.toString(16)} belong to no mapping that carries pages`);
      covered += Math.min(end, v.end) - Math.max(run.vaddr, v.start);
      out.add(v);
    }
    if (covered !== end - run.vaddr) throw new FerryError("FERRY_IMAGE_CORRUPT", `pagemap: pages at 0x${run.vaddr.toString(16)} fall outside the image's mappings`);
  }
  return out;
}
