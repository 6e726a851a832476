import { PAGE_SIZE } from "../kernel/sys.js";
import { appendRange, type PageRange } from "./protocol.js";

/**
 * The lazy pages of a process (the pages its source holds and the destination waits for),
 * numbered 0..total-1 in address order. Both sides build it from the same list (the images'
 * lazy runs), so a page number means the same page on both. Addresses are the source's.
 */
export class PageIndex {
  /** first address of each run */
  private readonly starts: Float64Array;
  /** page number of each run's first page; firsts[runs] = total */
  private readonly firsts: Float64Array;
  readonly total: number;

  constructor(runs: PageRange[]) {
    const sorted = runs.filter((r) => r.nrPages > 0).sort((a, b) => a.vaddr - b.vaddr);
    // merge touching runs so that a run boundary always means an address gap
    const merged: PageRange[] = [];
    for (const r of sorted) {
      const last = merged[merged.length - 1];
      if (last && last.vaddr + last.nrPages * PAGE_SIZE > r.vaddr) throw new RangeError(`lazy runs overlap at 0x${r.vaddr.toString(16)}`);
      appendRange(merged, r.vaddr, r.nrPages);
    }
    this.starts = new Float64Array(merged.length);
    this.firsts = new Float64Array(merged.length + 1);
    let n = 0;
    merged.forEach((r, i) => {
      this.starts[i] = r.vaddr;
      this.firsts[i] = n;
      n += r.nrPages;
    });
    this.firsts[merged.length] = n;
    this.total = n;
  }

  /** Page number of the page holding `addr`, or -1 when it is not a lazy page. */
  indexOf(addr: number): number {
    const r = this.runOfAddr(addr);
    if (r < 0) return -1;
    const i = this.firsts[r] + Math.floor((addr - this.starts[r]) / PAGE_SIZE);
    return i < this.firsts[r + 1] ? i : -1;
  }

  addrOf(i: number): number {
    const r = this.runOfIndex(i);
    return this.starts[r] + (i - this.firsts[r]) * PAGE_SIZE;
  }

  /** How many pages from page `i` on are contiguous in memory (to the end of its run). */
  contiguousFrom(i: number): number {
    return this.firsts[this.runOfIndex(i) + 1] - i;
  }

  /** Page numbers [first, end) of the lazy pages inside [start, end) of memory. */
  indexRange(start: number, end: number): [number, number] {
    return [this.firstAtOrAfter(start), this.firstAtOrAfter(end)];
  }

  /** The number of the first lazy page at or after `addr` (total when none). */
  firstAtOrAfter(addr: number): number {
    const r = this.runOfAddr(addr);
    if (r < 0) return this.starts.length && addr < this.starts[0] ? 0 : this.total;
    const off = Math.ceil((addr - this.starts[r]) / PAGE_SIZE);
    return Math.min(this.firsts[r] + off, this.firsts[r + 1]);
  }

  /** Ranges (in memory) of the pages whose flag in `set` equals `value`. */
  ranges(set: Uint8Array, value = 1): PageRange[] {
    const out: PageRange[] = [];
    for (let r = 0; r < this.starts.length; r++) {
      let i = this.firsts[r];
      const end = this.firsts[r + 1];
      while (i < end) {
        i = indexOfValue(set, value, i, end);
        if (i >= end) break;
        let j = i + 1;
        while (j < end && set[j] === value) j++;
        out.push({ vaddr: this.starts[r] + (i - this.firsts[r]) * PAGE_SIZE, nrPages: j - i });
        i = j;
      }
    }
    return out;
  }

  /** Run containing addr (by start), or -1 when addr is below the first run. */
  private runOfAddr(addr: number): number {
    return lastAtOrBelow(this.starts, this.starts.length, addr);
  }
  private runOfIndex(i: number): number {
    return Math.max(0, lastAtOrBelow(this.firsts, this.starts.length, i));
  }
}

/** The last k < n with a[k] <= x (a sorted), -1 when none. */
function lastAtOrBelow(a: Float64Array, n: number, x: number): number {
  let lo = 0, hi = n - 1, ans = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] <= x) {
      ans = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return ans;
}

/** First index in [from, end) where set[i] === value (end when none), at memchr speed. */
export function indexOfValue(set: Uint8Array, value: number, from: number, end: number): number {
  const i = set.subarray(from, end).indexOf(value);
  return i < 0 ? end : from + i;
}
