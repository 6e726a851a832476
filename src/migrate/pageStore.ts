import { PAGE_SIZE, SyscallError } from "../kernel/sys.js";
import { native } from "../kernel/native.js";
import { uffdCopy } from "../kernel/uffd.js";
import { bitmapBytes } from "./protocol.js";

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
  private readonly pages = new Set<number>();
  bytes = 0;

  add(vaddr: number, nrPages: number, payload: Buffer): void {
    this.frames.push({ vaddr, nrPages, payload });
    for (let k = 0; k < nrPages; k++) this.pages.add(vaddr + k * PAGE_SIZE);
    this.bytes += payload.length;
  }

  /** distinct pages received */
  get size(): number {
    return this.pages.size;
  }

  /**
   * Copy the kept pages into the process (its lazy ranges registered MISSING on `uffd`).
   * Zero pages are left missing: they read as zeros either way. Returns the pages installed.
   */
  install(uffd: number, keep: [number, number][]): number {
    const kept = keep.map(([start, n]) => ({ start, end: start + n * PAGE_SIZE })).sort((a, b) => a.start - b.start);
    const isKept = (addr: number) => {
      let lo = 0, hi = kept.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (addr < kept[mid].start) hi = mid - 1;
        else if (addr >= kept[mid].end) lo = mid + 1;
        else return true;
      }
      return false;
    };
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
    this.pages.clear();
    return installed;
  }
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
