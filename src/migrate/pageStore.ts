import { FerryError } from "../errors.js";
import { PAGE_SIZE, SyscallError } from "../kernel/sys.js";
import { native } from "../kernel/native.js";
import { uffdCopy } from "../kernel/uffd.js";
import { MAX_PAGES, bitmapBytes } from "./protocol.js";
import type { LocalPages } from "../lazy/daemon.js";

interface StoredFrame {
  vaddr: number;
  nrPages: number;
  /** zero bitmap, then the data of the non-zero pages */
  payload: Buffer;
}

/**
 * The agent's copy of the pages sent in pre-copy rounds: the frames as they arrived (no copy per
 * page). Installed into the restored process with UFFDIO_COPY before it resumes, newest frame
 * first (an older copy of a page then meets EEXIST and loses), and only where the source says
 * the copy is still current (`keep`): a page written after its last round comes later, lazily.
 */
export class PageStore {
  private readonly frames: StoredFrame[] = [];
  /** the newest copy of each page: its frame's payload and offset (-1: a zero page) */
  private readonly latest = new Map<number, { payload: Buffer; off: number }>();
  bytes = 0;

  /** Keep one PAGES frame (checked first: a page count, an address and a length that agree). */
  add(vaddr: number, nrPages: number, payload: Buffer): void {
    if (nrPages < 1 || nrPages > MAX_PAGES || vaddr % PAGE_SIZE) throw new FerryError("FERRY_PROTOCOL", `PAGES frame of ${nrPages} pages at 0x${vaddr.toString(16)}`);
    const bm = bitmapBytes(nrPages);
    let zeros = 0;
    for (let k = 0; k < nrPages && bm <= payload.length; k++) if (payload[k >> 3] & (1 << (k & 7))) zeros++;
    if (payload.length !== bm + (nrPages - zeros) * PAGE_SIZE) throw new FerryError("FERRY_PROTOCOL", `PAGES frame of ${payload.length} bytes for ${nrPages} pages (${zeros} zero)`);
    this.frames.push({ vaddr, nrPages, payload });
    let off = bitmapBytes(nrPages);
    for (let k = 0; k < nrPages; k++) {
      const zero = (payload[k >> 3] & (1 << (k & 7))) !== 0;
      this.latest.set(vaddr + k * PAGE_SIZE, { payload, off: zero ? -1 : off });
      if (!zero) off += PAGE_SIZE;
    }
    this.bytes += payload.length;
  }

  /** distinct pages received */
  get size(): number {
    return this.latest.size;
  }

  /**
   * The kept pages as the lazy-pages daemon's local source (hybrid): it installs them after the
   * resume, in the background or when the process touches one first.
   */
  localPages(keep: [number, number][]): LocalPages {
    return {
      // every kept page came in a round (the source keeps only pages it sent): read() checks it
      ranges: keep.map(([start, n]) => ({ start, end: start + n * PAGE_SIZE })).sort((a, b) => a.start - b.start),
      read: (src, n) => {
        const payload = Buffer.allocUnsafe(n * PAGE_SIZE);
        const offsets = new Int32Array(n);
        let out = 0;
        for (let k = 0; k < n; k++) {
          const p = this.latest.get(src + k * PAGE_SIZE);
          if (!p) throw new FerryError("FERRY_PROTOCOL", `the source said the page at 0x${(src + k * PAGE_SIZE).toString(16)} is here, but no round brought it`);
          if (p.off < 0) {
            offsets[k] = -1;
            continue;
          }
          p.payload.copy(payload, out, p.off, p.off + PAGE_SIZE);
          offsets[k] = out;
          out += PAGE_SIZE;
        }
        return { payload, offsets };
      },
    };
  }

  /**
   * Copy the kept pages into the process (its lazy ranges registered MISSING on `uffd`).
   * Zero pages are left missing: they read as zeros either way. Returns the pages installed.
   */
  install(uffd: number, keep: [number, number][]): number {
    const isKept = keptTest(keep);
    let installed = 0;
    for (let f = this.frames.length - 1; f >= 0; f--) {
      const { vaddr, nrPages, payload } = this.frames[f];
      const base = Number(native.addressOf(payload));
      let off = bitmapBytes(nrPages);
      let run = -1, runOff = 0; // first page and payload offset of the current run of kept data pages
      for (let k = 0; k <= nrPages; k++) {
        const zero = k < nrPages && (payload[k >> 3] & (1 << (k & 7))) !== 0;
        const take = k < nrPages && !zero && isKept(vaddr + k * PAGE_SIZE);
        if (!take && run >= 0) {
          installed += copyRun(uffd, vaddr + run * PAGE_SIZE, base + runOff, k - run);
          run = -1;
        }
        if (take && run < 0) {
          run = k;
          runOff = off;
        }
        if (k < nrPages && !zero) off += PAGE_SIZE;
      }
    }
    this.frames.length = 0;
    this.latest.clear();
    return installed;
  }
}

/** Is a page inside the (start, nrPages) ranges? */
function keptTest(keep: [number, number][]): (addr: number) => boolean {
  const kept = keep.map(([start, n]) => ({ start, end: start + n * PAGE_SIZE })).sort((a, b) => a.start - b.start);
  return (addr) => {
    let lo = 0, hi = kept.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (addr < kept[mid].start) hi = mid - 1;
      else if (addr >= kept[mid].end) lo = mid + 1;
      else return true;
    }
    return false;
  };
}

/** UFFDIO_COPY of n pages, skipping those already there (EEXIST: a newer copy, or the images'). */
function copyRun(uffd: number, dst: number, src: number, n: number): number {
  let done = 0, installed = 0;
  while (done < n * PAGE_SIZE) {
    try {
      const d = uffdCopy(uffd, dst + done, src + done, n * PAGE_SIZE - done);
      done += d;
      installed += d / PAGE_SIZE;
    } catch (e) {
      if (!(e instanceof SyscallError) || e.code !== "EEXIST") throw e;
      done += PAGE_SIZE;
    }
  }
  return installed;
}
