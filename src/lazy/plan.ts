import fs from "node:fs";
import { PAGE_SIZE, PROT } from "../kernel/sys.js";
import { PM, readPagemap, vmRead } from "../kernel/mem.js";
import { PAGE_IS, pagemapScanAll } from "../kernel/pagemapScan.js";
import { FerryError } from "../errors.js";
import type { LazyRunImage, ThreadImage, VmaImage } from "../images/types.js";
import type { PagesWriter } from "../images/pages.js";
import { appendRange } from "./protocol.js";

/**
 * Which memory of a process travels lazily, decided at dump time: private anonymous mappings
 * (heap, stack, anonymous mmap) that can be read. Their pages are not written to the images;
 * the images list them (lazy runs) and the page server sends them from the frozen process.
 *
 * A few pages the restore itself makes the kernel write to (each thread's rseq area) travel in
 * the images as usual: a kernel write to a missing page before the userfaultfd is registered
 * would fill it with zeros, and after it would wait for a daemon that the restore blocks.
 */
export function isLazyVma(v: VmaImage): boolean {
  return v.kind === "anon" && !v.shared && v.hasPages && (v.prot & PROT.READ) !== 0;
}

export interface LazyDumpPlan {
  /** the pages the page server will hold (present or swapped, not the shared zero page) */
  lazyRuns: LazyRunImage[];
  lazyPages: number;
  /** present pages of lazy mappings that travel in the images anyway */
  eager: { addr: number; len: number }[];
}

/**
 * Mark lazy VMAs (v.lazy = true) and list their pages. The process must be frozen. A mapping
 * inside `whole` is listed whole, unscanned: its caller sorts its pages out itself (pre-copy's
 * switch-over, which scans them anyway), and the scan of 1 GiB is 5 ms of the downtime.
 */
export function planLazyDump(pid: number, vmas: VmaImage[], threads: Pick<ThreadImage, "rseqAddress" | "rseqLength">[], whole: { start: number; end: number }[] = []): LazyDumpPlan {
  const lazyVmas = vmas.filter(isLazyVma);
  for (const v of lazyVmas) v.lazy = true;
  const eagerPages = new Set<number>();
  for (const t of threads) {
    if (!t.rseqAddress) continue;
    const first = Math.floor(t.rseqAddress / PAGE_SIZE);
    const last = Math.floor((t.rseqAddress + Math.max(1, t.rseqLength) - 1) / PAGE_SIZE);
    for (let p = first; p <= last; p++) eagerPages.add(p * PAGE_SIZE);
  }
  const fd = fs.openSync(`/proc/${pid}/pagemap`, "r");
  const lazyRuns: LazyRunImage[] = [];
  const eager: { addr: number; len: number }[] = [];
  const eagerSorted = [...eagerPages].sort((a, b) => a - b);
  try {
    // by ranges, never by page: the process is frozen meanwhile
    for (const v of lazyVmas) {
      const unscanned = whole.some((w) => w.start <= v.start && v.end <= w.end);
      for (const r of unscanned ? [{ start: v.start, end: v.end }] : presentRanges(fd, v.start, v.end)) {
        let runStart = r.start;
        for (const a of eagerSorted) {
          if (a < r.start || a >= r.end) continue;
          if (a > runStart) appendRange(lazyRuns, runStart, (a - runStart) / PAGE_SIZE);
          eager.push({ addr: a, len: PAGE_SIZE });
          runStart = a + PAGE_SIZE;
        }
        if (r.end > runStart) appendRange(lazyRuns, runStart, (r.end - runStart) / PAGE_SIZE);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return { lazyRuns, lazyPages: lazyRuns.reduce((n, r) => n + r.nrPages, 0), eager };
}

/**
 * Page ranges of [start, end) that hold data of the process's own: present or swapped, and not
 * the shared zero page. PAGEMAP_SCAN lists them in one call (Linux 6.7+); older kernels read
 * /proc/PID/pagemap entry by entry.
 */
export function presentRanges(pagemapFd: number, start: number, end: number): { start: number; end: number }[] {
  try {
    return pagemapScanAll(pagemapFd, start, end, {
      categoryAnyof: PAGE_IS.PRESENT | PAGE_IS.SWAPPED,
      categoryInvertedMask: PAGE_IS.PFNZERO,
      categoryMask: PAGE_IS.PFNZERO,
      returnMask: PAGE_IS.PRESENT | PAGE_IS.SWAPPED,
      maxRegions: 4096,
    }).map((r) => ({ start: r.start, end: r.end }));
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== "ENOTTY" && code !== "EINVAL") throw e;
  }
  const out: { start: number; end: number }[] = [];
  const CHUNK = 1 << 16;
  for (let base = start; base < end; base += CHUNK * PAGE_SIZE) {
    const stop = Math.min(end, base + CHUNK * PAGE_SIZE);
    const entries = readPagemap(pagemapFd, base, stop);
    entries.forEach((e, i) => {
      if ((e & (PM.PRESENT | PM.SWAPPED)) === 0n) return;
      const a = base + i * PAGE_SIZE;
      const last = out[out.length - 1];
      if (last && last.end === a) last.end += PAGE_SIZE;
      else out.push({ start: a, end: a + PAGE_SIZE });
    });
  }
  return out;
}

/** Write the eager pages of lazy mappings into the images' page file. */
export function writeEagerPages(pid: number, plan: LazyDumpPlan, pages: PagesWriter): void {
  const buf = Buffer.alloc(PAGE_SIZE);
  for (const r of plan.eager) {
    for (let off = 0; off < r.len; off += PAGE_SIZE) {
      if (vmRead(pid, buf, [{ addr: r.addr + off, len: PAGE_SIZE }]) !== PAGE_SIZE) {
        throw new FerryError("FERRY_DUMP_MEMORY", `process ${pid}: cannot read the page at 0x${(r.addr + off).toString(16)}`);
      }
      pages.add(r.addr + off, buf);
    }
  }
}
