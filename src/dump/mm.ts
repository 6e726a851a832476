import fs from "node:fs";
import { NR, PAGE_SIZE, PROT } from "../kernel/sys.js";
import { PM, readPagemap, vmRead, peekMem } from "../kernel/mem.js";
import { readStat, statField, type Vma } from "../kernel/procfs.js";
import type { Injector } from "../kernel/inject.js";
import { FerryError } from "../errors.js";
import type { MmImage, VmaImage, VmaKind } from "../images/types.js";
import type { PagesWriter } from "../images/pages.js";

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
  if (kind === "anon" || kind === "shmem" || kind === "memfd") return true;
  if (kind === "file") return !shared; // private file mappings: only pages written (COW'd)
  return false;
}

export function describeVma(v: Vma, fileId = 0): VmaImage {
  const kind = vmaKind(v);
  const shared = v.perms[3] === "s";
  if (kind !== "vdso" && kind !== "vvar" && (v.flags.includes("io") || v.flags.includes("pf"))) {
    throw new FerryError("FERRY_UNSUPPORTED", `mapping ${v.start.toString(16)}-${v.end.toString(16)} ${v.path}: device (I/O) mappings cannot be dumped`);
  }
  if (kind === "sysv") {
    throw new FerryError("FERRY_UNSUPPORTED", `mapping ${v.start.toString(16)}-${v.end.toString(16)} ${v.path}: System V shared memory is not supported yet`);
  }
  return {
    start: v.start, end: v.end, prot: prot(v.perms), shared, kind, path: v.path,
    pgoff: v.offset, fileId, vmflags: v.flags, hasPages: carriesPages(kind, shared), inode: v.inode,
  };
}

const BATCH = 4 << 20;
const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);

/**
 * Stream the pages of `vmas` that must travel into `pages`: pagemap says which are there,
 * process_vm_readv reads them in batches of up to 4 MiB, zero pages are skipped.
 * Returns the number of zero pages skipped.
 */
export function dumpPages(pid: number, vmas: VmaImage[], pages: PagesWriter): number {
  const pagemapFd = fs.openSync(`/proc/${pid}/pagemap`, "r");
  const buf = Buffer.allocUnsafe(BATCH);
  let zero = 0;
  try {
    for (const v of vmas) {
      if (!v.hasPages) continue;
      const wanted = wantedPages(pagemapFd, v);
      for (const range of batches(wanted)) {
        const len = range.reduce((s, r) => s + r.len, 0);
        const data = buf.subarray(0, len);
        if (v.prot & PROT.READ) {
          const got = vmRead(pid, data, range);
          if (got !== len) throw new FerryError("FERRY_DUMP_MEMORY", `process ${pid}: could read only ${got} of ${len} bytes at 0x${range[0].addr.toString(16)}`);
        } else {
          let off = 0;
          for (const r of range) { peekMem(pid, r.addr, r.len).copy(data, off); off += r.len; }
        }
        zero += writeNonZero(pages, range, data);
      }
    }
  } finally {
    fs.closeSync(pagemapFd);
  }
  return zero;
}

/** Ranges of pages of one VMA that hold data of the process's own. */
function wantedPages(pagemapFd: number, v: VmaImage): { addr: number; len: number }[] {
  // Shared memory: the object's pages, mapped here or not, read through the mapping.
  if (v.kind === "shmem" || v.kind === "memfd") return [{ addr: v.start, len: v.end - v.start }];
  const out: { addr: number; len: number }[] = [];
  const CHUNK = 1 << 16; // pages of pagemap read at once (512 KiB of entries)
  for (let base = v.start; base < v.end; base += CHUNK * PAGE_SIZE) {
    const end = Math.min(v.end, base + CHUNK * PAGE_SIZE);
    const entries = readPagemap(pagemapFd, base, end);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      const own = (e & PM.SWAPPED) !== 0n || ((e & PM.PRESENT) !== 0n && (v.kind === "anon" || (e & PM.FILE_OR_SHARED) === 0n));
      if (!own) continue;
      const addr = base + i * PAGE_SIZE;
      const last = out[out.length - 1];
      if (last && last.addr + last.len === addr) last.len += PAGE_SIZE;
      else out.push({ addr, len: PAGE_SIZE });
    }
  }
  return out;
}

/** Split ranges into groups of at most BATCH bytes (splitting a range when needed). */
function* batches(ranges: { addr: number; len: number }[]): Generator<{ addr: number; len: number }[]> {
  let cur: { addr: number; len: number }[] = [];
  let size = 0;
  for (const r of ranges) {
    let { addr, len } = r;
    while (len > 0) {
      const take = Math.min(len, BATCH - size);
      cur.push({ addr, len: take });
      size += take;
      addr += take;
      len -= take;
      if (size === BATCH) {
        yield cur;
        cur = [];
        size = 0;
      }
    }
  }
  if (cur.length) yield cur;
}

function writeNonZero(pages: PagesWriter, ranges: { addr: number; len: number }[], data: Buffer): number {
  let zero = 0;
  let off = 0;
  for (const r of ranges) {
    let runStart = -1;
    for (let p = 0; p <= r.len; p += PAGE_SIZE) {
      const isData = p < r.len && !ZERO_PAGE.equals(data.subarray(off + p, off + p + PAGE_SIZE));
      if (p < r.len && !isData) zero++;
      if (isData && runStart < 0) runStart = p;
      if (!isData && runStart >= 0) {
        pages.add(r.addr + runStart, data.subarray(off + runStart, off + p));
        runStart = -1;
      }
    }
    off += r.len;
  }
  return zero;
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
