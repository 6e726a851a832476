import { FerryError } from "../errors.js";
import { PAGE_SIZE } from "../kernel/sys.js";
import { MAX_PAGES, bitmapBytes } from "./protocol.js";
import { pageOffsets } from "../lazy/protocol.js";
import type { LocalPages } from "../lazy/daemon.js";

/** Page slots per frame in `latest`'s numbers (a frame holds at most MAX_PAGES pages). */
const FRAME_SLOT = 512;

/**
 * The agent's copy of the pages sent in pre-copy rounds: the PAGES frames as they arrived (no
 * copy per page), the newest copy of each page found by address. The lazy-pages daemon installs
 * them into the restored process after it resumes, only where the source says the copy is still
 * current (`keep`): a page written after its last round comes from the page server (hybrid) or
 * was sent again at the switch-over (pre-copy).
 */
export class PageStore {
  /** every frame kept, by arrival, and where its page data starts (after its bitmap) */
  private readonly frames: { payload: Buffer; data: number }[] = [];
  /**
   * The newest copy of each page: frame number × FRAME_SLOT + its place among the frame's
   * non-zero pages + 1 (0: a zero page). Small integers, not an object per page: a GC during the
   * downtime would walk 262,144 small objects for 1 GiB.
   */
  private readonly latest = new Map<number, number>();
  bytes = 0;
  /** add()'s reading of one frame's bitmap */
  private readonly offsets = new Int32Array(MAX_PAGES);

  /** Keep one PAGES frame (checked first: a page count, an address and a length that agree). */
  add(vaddr: number, nrPages: number, payload: Buffer): void {
    if (nrPages < 1 || nrPages > MAX_PAGES || vaddr % PAGE_SIZE) throw new FerryError("FERRY_PROTOCOL", `PAGES frame of ${nrPages} pages at 0x${vaddr.toString(16)}`);
    const offsets = this.offsets;
    const len = pageOffsets(payload, nrPages, offsets);
    if (payload.length !== len) {
      const zeros = nrPages - (len - bitmapBytes(nrPages)) / PAGE_SIZE;
      throw new FerryError("FERRY_PROTOCOL", `PAGES frame of ${payload.length} bytes for ${nrPages} pages (${zeros} zero)`);
    }
    const data = bitmapBytes(nrPages);
    const frame = this.frames.push({ payload, data }) - 1;
    for (let k = 0; k < nrPages; k++) this.latest.set(vaddr + k * PAGE_SIZE, offsets[k] < 0 ? 0 : frame * FRAME_SLOT + (offsets[k] - data) / PAGE_SIZE + 1);
    this.bytes += payload.length;
  }

  /** distinct pages received */
  get size(): number {
    return this.latest.size;
  }

  /**
   * The kept pages as the lazy-pages daemon's local source (pre-copy, hybrid): it installs them
   * after the resume, in the background or when the process touches one first.
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
          // not FERRY_PROTOCOL (which the daemon leaves to a page server's channel): the daemon kills the process with this line
          if (p === undefined) throw new FerryError("FERRY_PAGE_MISSING", `the source said the page at 0x${(src + k * PAGE_SIZE).toString(16)} is here, but no round brought it`);
          if (p === 0) {
            offsets[k] = -1;
            continue;
          }
          const f = this.frames[Math.floor((p - 1) / FRAME_SLOT)];
          const off = f.data + ((p - 1) % FRAME_SLOT) * PAGE_SIZE;
          f.payload.copy(payload, out, off, off + PAGE_SIZE);
          offsets[k] = out;
          out += PAGE_SIZE;
        }
        return { payload, offsets };
      },
    };
  }
}
