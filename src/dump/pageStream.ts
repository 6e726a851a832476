import fs from "node:fs";
import { PAGE_SIZE, PROT, SyscallError } from "../kernel/sys.js";
import { PM, readPagemap, vmRead, peekMem } from "../kernel/mem.js";
import { PAGE_IS, pagemapScanAll } from "../kernel/pagemapScan.js";
import { FerryError } from "../errors.js";
import type { VmaImage } from "../images/types.js";
import type { PagesWriter } from "../images/pages.js";
import { PageHelper } from "../images/pageHelper.js";

/** Bytes read from the process and written out at once: few calls, and the buffer stays in cache (2 MiB measured best of 1-8). */
const BATCH = 2 << 20;
const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);

type Range = { addr: number; len: number };

/** Pages of a process in a tree that are not read the usual way (sorted ranges). */
export interface PageSelection {
  /** shared with its parent since fork: left out, the parent's copy is restored */
  inherited?: Range[];
  /**
   * Shared with a child that goes on running: read through /proc/PID/mem (at about half the
   * speed), which does not pin them. process_vm_readv pins what it reads, and before another
   * process pins an anonymous page shared since fork the kernel gives its owner a copy of its own.
   */
  sharedWithChildren?: Range[];
}

/** With a helper thread, batches in flight: one being read while the helper writes the others. */
const SLOTS = 3;

/**
 * Stream the pages of `vmas` that must travel into `pages`: PAGEMAP_SCAN says which are there,
 * process_vm_readv reads them in batches of up to 2 MiB, and pages of zeros are left out where a
 * fresh mapping reads zeros anyway. Where a second CPU is free, a helper thread writes each batch
 * to the page file while the next one is read. Returns the number of zero pages skipped.
 */
export function dumpPages(pid: number, vmas: VmaImage[], pages: PagesWriter, select: PageSelection = {}): number {
  const mapped = vmas.reduce((s, v) => s + (v.hasPages ? v.end - v.start : 0), 0);
  const helper = PageHelper.forBytes(mapped);
  // The helper writes straight from the batch buffers: they are shared, and one is reused only once written.
  const ring = helper ? Buffer.from(new SharedArrayBuffer(SLOTS * BATCH)) : Buffer.allocUnsafe(BATCH);
  const writing = new Array<number>(SLOTS).fill(0);
  let slot = 0;
  const pagemapFd = fs.openSync(`/proc/${pid}/pagemap`, "r");
  const shared = select.sharedWithChildren ?? [];
  const memFd = shared.length ? fs.openSync(`/proc/${pid}/mem`, "r") : -1;
  let zero = 0;
  try {
    for (const v of vmas) {
      if (!v.hasPages) continue;
      // A private file mapping shows the file where a page is missing: its zero pages must travel.
      const skipZero = v.kind !== "file";
      const wanted = split(wantedPages(pagemapFd, v), select.inherited ?? []).outside;
      const { outside, inside } = split(wanted, shared);
      for (const [batch, unpinned] of reads(outside, inside)) {
        if (helper) {
          slot = (slot + 1) % SLOTS;
          if (writing[slot]) helper.waitFor(writing[slot]);
        }
        const len = batch.reduce((s, r) => s + r.len, 0);
        const data = ring.subarray(slot * BATCH, slot * BATCH + len);
        if (unpinned) readThroughMem(memFd, batch, data);
        else readBatch(pid, v, batch, data);
        const kept = skipZero ? dropZeroPages(data, batch) : { bytes: len, ranges: batch };
        zero += (len - kept.bytes) / PAGE_SIZE;
        if (kept.bytes) writing[slot] = pages.addBatch(data.subarray(0, kept.bytes), kept.ranges, helper?.ready ? helper : null);
      }
    }
    helper?.waitFor();
  } finally {
    fs.closeSync(pagemapFd);
    if (memFd >= 0) fs.closeSync(memFd);
    if (helper) {
      try {
        helper.waitFor(); // the page file must not be closed under a write
      } catch { /* the first error is on its way already */ }
      helper.close();
    }
  }
  return zero;
}

function readBatch(pid: number, v: VmaImage, batch: Range[], data: Buffer): void {
  if (v.prot & PROT.READ) {
    const got = vmRead(pid, data, batch);
    if (got !== data.length) throw new FerryError("FERRY_DUMP_MEMORY", `process ${pid}: could read only ${got} of ${data.length} bytes at 0x${batch[0].addr.toString(16)}`);
    return;
  }
  let off = 0;
  for (const r of batch) {
    peekMem(pid, r.addr, r.len).copy(data, off);
    off += r.len;
  }
}

function readThroughMem(memFd: number, batch: Range[], data: Buffer): void {
  let off = 0;
  for (const r of batch) {
    for (let done = 0; done < r.len;) {
      const n = fs.readSync(memFd, data, off + done, r.len - done, r.addr + done);
      if (n <= 0) throw new FerryError("FERRY_DUMP_MEMORY", `/proc/PID/mem: could not read 0x${(r.addr + done).toString(16)}`);
      done += n;
    }
    off += r.len;
  }
}

/** Ranges of pages of one VMA that hold data of the process's own. */
function wantedPages(pagemapFd: number, v: VmaImage): Range[] {
  // Shared memory: the object's pages, mapped here or not, read through the mapping.
  if (v.kind === "shmem" || v.kind === "memfd" || v.kind === "sysv") return [{ addr: v.start, len: v.end - v.start }];
  try {
    // Present or swapped out, not the shared zero page; in a private file mapping, only the
    // pages it wrote (not the file's).
    const not = v.kind === "anon" ? PAGE_IS.PFNZERO : PAGE_IS.FILE;
    return pagemapScanAll(pagemapFd, v.start, v.end, {
      categoryAnyof: PAGE_IS.PRESENT | PAGE_IS.SWAPPED,
      categoryMask: not, categoryInvertedMask: not, returnMask: PAGE_IS.PRESENT,
      maxRegions: 4096,
    }).map((r) => ({ addr: r.start, len: r.end - r.start }));
  } catch (e) {
    if (!(e instanceof SyscallError) || (e.code !== "ENOTTY" && e.code !== "EINVAL")) throw e;
    return wantedPagesByEntries(pagemapFd, v); // a kernel before 6.7
  }
}

/** The same, from /proc/PID/pagemap read entry by entry (kernels without PAGEMAP_SCAN). */
function wantedPagesByEntries(pagemapFd: number, v: VmaImage): Range[] {
  const out: Range[] = [];
  const CHUNK = 1 << 16; // pages of pagemap read at once (512 KiB of entries)
  const [present, swapped, fileOrShared] = [PM.PRESENT, PM.SWAPPED, PM.FILE_OR_SHARED].map((b) => Number(b >> 32n));
  for (let base = v.start; base < v.end; base += CHUNK * PAGE_SIZE) {
    const entries = readPagemap(pagemapFd, base, Math.min(v.end, base + CHUNK * PAGE_SIZE));
    const high = new Uint32Array(entries.buffer); // little endian: the flag bits are in odd words
    for (let i = 0; i < entries.length; i++) {
      const e = high[2 * i + 1];
      const own = (e & swapped) !== 0 || ((e & present) !== 0 && (v.kind === "anon" || (e & fileOrShared) === 0));
      if (!own) continue;
      const addr = base + i * PAGE_SIZE;
      const last = out[out.length - 1];
      if (last && last.addr + last.len === addr) last.len += PAGE_SIZE;
      else out.push({ addr, len: PAGE_SIZE });
    }
  }
  return out;
}

/** `ranges` (sorted) cut into the parts outside and inside `by` (sorted). */
function split(ranges: Range[], by: Range[]): { outside: Range[]; inside: Range[] } {
  if (!by.length) return { outside: ranges, inside: [] };
  const outside: Range[] = [], inside: Range[] = [];
  let k = 0;
  for (const r of ranges) {
    let addr = r.addr;
    const end = r.addr + r.len;
    while (k < by.length && by[k].addr + by[k].len <= addr) k++;
    for (let j = k; j < by.length && by[j].addr < end && addr < end; j++) {
      if (by[j].addr > addr) outside.push({ addr, len: by[j].addr - addr });
      const from = Math.max(addr, by[j].addr), to = Math.min(end, by[j].addr + by[j].len);
      inside.push({ addr: from, len: to - from });
      addr = to;
    }
    if (addr < end) outside.push({ addr, len: end - addr });
  }
  return { outside, inside };
}

/** The batches to read: those read the usual way, then those shared with a child (`unpinned`). */
function* reads(outside: Range[], inside: Range[]): Generator<[batch: Range[], unpinned: boolean]> {
  for (const b of batches(outside)) yield [b, false];
  for (const b of batches(inside)) yield [b, true];
}

/** Split ranges into groups of at most BATCH bytes (splitting a range when needed). */
function* batches(ranges: Range[]): Generator<Range[]> {
  let cur: Range[] = [];
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

/** Is the page at `off` all zeros? Three words decide almost every page; memcmp the rest. */
function isZeroPage(words: Int32Array, data: Buffer, off: number): boolean {
  const w = off >> 2;
  if (words[w] | words[w + 511] | words[w + 1023]) return false;
  return data.compare(ZERO_PAGE, 0, PAGE_SIZE, off, off + PAGE_SIZE) === 0;
}

/**
 * Move the non-zero pages of `data` (the pages of `ranges`, one after the other) to its front,
 * in order, and say where they belong. Nothing moves when no page is zero.
 */
function dropZeroPages(data: Buffer, ranges: Range[]): { bytes: number; ranges: Range[] } {
  const words = new Int32Array(data.buffer, data.byteOffset, data.length >> 2);
  const kept: Range[] = [];
  let from = 0, to = 0;
  for (const r of ranges) {
    let runStart = -1; // offset in `data` of the current run of non-zero pages
    for (let p = 0; p <= r.len; p += PAGE_SIZE) {
      const isData = p < r.len && !isZeroPage(words, data, from + p);
      if (isData && runStart < 0) runStart = from + p;
      if (!isData && runStart >= 0) {
        const len = from + p - runStart;
        if (to !== runStart) data.copyWithin(to, runStart, runStart + len);
        kept.push({ addr: r.addr + (runStart - from), len });
        to += len;
        runStart = -1;
      }
    }
    from += r.len;
  }
  return { bytes: to, ranges: kept };
}
