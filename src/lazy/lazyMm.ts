import fs from "node:fs";
import type { VmaImage } from "../images/types.js";
import type { PageIndex } from "./pageIndex.js";
import { appendRange, type PageRange } from "./protocol.js";

/**
 * A piece of the address space whose content is the source's memory at another address:
 * [dst, dst+len) here holds what [src, src+len) held at the source. At first dst = src; mremap
 * moves pieces. What happens to it at fork (from the VmFlags): copied, absent (MADV_DONTFORK)
 * or zero (MADV_WIPEONFORK).
 */
export interface Segment {
  dst: number;
  src: number;
  len: number;
  atFork: "copy" | "skip" | "wipe";
}

/**
 * One address space being filled: the restored process, or a child it forked while pages were
 * still missing (its own userfaultfd, its own copy of what is missing).
 */
export class LazyMm {
  /** per page (PageIndex numbering): 1 = missing here and wanted */
  readonly pending: Uint8Array;
  pendingCount: number;
  /** sorted by dst, never overlapping */
  private segments: Segment[];
  /** fault arrival times of pages still missing (performance.now() ms), for latencies */
  readonly faultStart = new Map<number, number>();
  /** threads seen faulting, to kill them if the memory can never come */
  readonly tids = new Set<number>();
  /** faults read from the uffd but not served yet */
  faults: { address: number; tid: number }[] = [];
  alive = true;
  poll: object | null = null;

  constructor(
    readonly uffd: number,
    readonly index: PageIndex,
    readonly label: string,
    segments: Segment[],
    pending: Uint8Array,
    readonly pid = 0,
    pendingCount = countOnes(pending),
  ) {
    this.segments = segments.sort((a, b) => a.dst - b.dst);
    this.pending = pending;
    this.pendingCount = pendingCount;
  }

  /** The restored process: every lazy page missing, every mapping where the image had it. */
  static initial(uffd: number, index: PageIndex, vmas: VmaImage[], pid: number): LazyMm {
    const segments = vmas.map((v) => ({
      dst: v.start, src: v.start, len: v.end - v.start,
      atFork: v.vmflags.includes("dc") ? "skip" : v.vmflags.includes("wf") ? "wipe" : "copy",
    } as Segment));
    return new LazyMm(uffd, index, `process ${pid}`, segments, new Uint8Array(index.total).fill(1), pid, index.total);
  }

  /** A child forked from this address space now, with its own uffd. */
  forked(uffd: number, label: string): LazyMm {
    const child = new LazyMm(uffd, this.index, label, [], Uint8Array.from(this.pending));
    for (const s of this.segments) {
      if (s.atFork === "skip") continue;
      child.segments.push({ ...s });
    }
    // wiped-on-fork and absent pieces hold nothing of the source in the child
    for (const s of this.segments) if (s.atFork !== "copy") child.dropSegment(s);
    child.pendingCount = countOnes(child.pending);
    return child;
  }

  /** The source address whose content belongs at `dst` here, or -1. */
  srcOf(dst: number): number {
    const s = this.segmentAt(dst);
    return s ? s.src + (dst - s.dst) : -1;
  }

  /**
   * Where the source's `src` lives here now, and how many bytes from there on stay contiguous
   * here (to the end of its segment); null when unmapped, or never mapped here.
   */
  dstRun(src: number): { dst: number; len: number } | null {
    for (const s of this.segments) if (src >= s.src && src < s.src + s.len) return { dst: s.dst + (src - s.src), len: s.src + s.len - src };
    return null;
  }

  /** MADV_DONTNEED/MADV_REMOVE: the process wants zeros in [start, end): stop waiting for those pages. */
  remove(start: number, end: number): PageRange[] {
    const dropped: PageRange[] = [];
    for (const piece of this.overlapping(start, end)) dropped.push(...this.dropSegment(piece));
    return dropped;
  }

  /** munmap: forget [start, end). */
  unmap(start: number, end: number): PageRange[] {
    return this.cut(start, end).flatMap((piece) => this.dropSegment(piece));
  }

  /** mremap moved [from, from+len) to [to, to+len): so did the missing pages. */
  remap(from: number, to: number, len: number): PageRange[] {
    const moved = this.cut(from, from + len);
    const dropped = this.cut(to, to + len).flatMap((piece) => this.dropSegment(piece));
    for (const piece of moved) this.segments.push({ ...piece, dst: piece.dst + (to - from) });
    this.segments.sort((a, b) => a.dst - b.dst);
    return dropped;
  }

  /** Mark the pages of a piece as not wanted; returns the source ranges that stopped pending. */
  private dropSegment(piece: Segment): PageRange[] {
    const out: PageRange[] = [];
    const [a, b] = this.index.indexRange(piece.src, piece.src + piece.len);
    for (let i = a; i < b; i++) {
      if (!this.pending[i]) continue;
      this.pending[i] = 0;
      this.pendingCount--;
      this.faultStart.delete(i);
      appendRange(out, this.index.addrOf(i), 1);
    }
    return out;
  }

  private segmentAt(dst: number): Segment | null {
    let lo = 0, hi = this.segments.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.segments[mid];
      if (dst < s.dst) hi = mid - 1;
      else if (dst >= s.dst + s.len) lo = mid + 1;
      else return s;
    }
    return null;
  }

  /** The parts of segments inside [start, end), without changing anything. */
  private overlapping(start: number, end: number): Segment[] {
    const out: Segment[] = [];
    for (const s of this.segments) {
      const a = Math.max(start, s.dst), b = Math.min(end, s.dst + s.len);
      if (a < b) out.push({ ...s, dst: a, src: s.src + (a - s.dst), len: b - a });
    }
    return out;
  }

  /** Remove [start, end) from the segments (splitting them), returning the removed pieces. */
  private cut(start: number, end: number): Segment[] {
    const removed = this.overlapping(start, end);
    if (!removed.length) return removed;
    const kept: Segment[] = [];
    for (const s of this.segments) {
      const sEnd = s.dst + s.len;
      if (sEnd <= start || s.dst >= end) {
        kept.push(s);
        continue;
      }
      if (s.dst < start) kept.push({ ...s, len: start - s.dst });
      if (sEnd > end) kept.push({ ...s, dst: end, src: s.src + (end - s.dst), len: sEnd - end });
    }
    this.segments = kept.sort((a, b) => a.dst - b.dst);
    return removed;
  }

  close(): void {
    this.alive = false;
    try {
      fs.closeSync(this.uffd);
    } catch { /* already closed */ }
  }
}

function countOnes(a: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) n += a[i];
  return n;
}
