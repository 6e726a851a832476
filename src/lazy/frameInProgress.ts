import { PAGE_SIZE } from "../kernel/sys.js";
import type { FrameHeader } from "../net/framing.js";
import type { PageIndex } from "./pageIndex.js";
import { CMD, MAX_FRAME_PAGES, bitmapBytes, pageOffsets } from "./protocol.js";

/** Pages of a frame still being read that are whole already: [from, to), by the frame's page numbers. */
export interface ArrivedPages {
  /** the frame's first page (PageIndex numbering) */
  first: number;
  from: number;
  to: number;
  /** the frame's layout (pageOffsets of its bitmap) */
  offsets: Int32Array;
}

/**
 * The pushed frame being read: its payload lands in place as it arrives (FrameDecoder), so the
 * pages already whole can be installed before the rest of the frame (up to 256 KiB) has come,
 * when a thread waits on one of them. Those pages are skipped once the frame is complete.
 */
export class FrameInProgress {
  private id = -1;
  private vaddr = -1;
  /** pages of that frame installed before it was complete */
  private done = 0;
  /** that frame's layout, read once from its bitmap (null: not one to take pages from early) */
  private layout: { first: number; offsets: Int32Array } | null = null;

  constructor(private readonly index: PageIndex) {}

  /**
   * What of frame `h` has arrived whole in `payload` (its first bytes) and was not taken yet;
   * null when nothing, or when the frame is not one to take pages from early (not PAGES, or
   * malformed: onPages refuses it whole once it is complete).
   */
  arrived(h: FrameHeader & { length: number }, payload: Buffer): ArrivedPages | null {
    const n = h.nrPages;
    if (h.cmd !== CMD.PAGES || n < 1 || n > MAX_FRAME_PAGES || payload.length < bitmapBytes(n)) return null;
    if (h.id !== this.id || h.vaddr !== this.vaddr) {
      this.id = h.id;
      this.vaddr = h.vaddr;
      this.done = 0;
      this.layout = this.layoutOf(h, payload);
    }
    if (!this.layout) return null;
    const { first, offsets } = this.layout;
    let to = this.done;
    while (to < n && (offsets[to] < 0 || offsets[to] + PAGE_SIZE <= payload.length)) to++;
    return to > this.done ? { first, from: this.done, to, offsets } : null;
  }

  /** Where frame `h`'s pages belong and lie in its payload (its bitmap has arrived); null if malformed. */
  private layoutOf(h: FrameHeader & { length: number }, payload: Buffer): { first: number; offsets: Int32Array } | null {
    const n = h.nrPages;
    const first = this.index.indexOf(h.vaddr);
    if (first < 0 || this.index.contiguousFrom(first) < n) return null;
    const offsets = new Int32Array(n);
    return pageOffsets(payload, n, offsets) === h.length ? { first, offsets } : null;
  }

  /** Pages [from, to) of the frame arrived() was last asked about were taken. */
  took(to: number): void {
    this.done = to;
  }

  /** Frame `h` is complete: how many of its pages were taken before. */
  complete(h: FrameHeader): number {
    const done = h.id === this.id && h.vaddr === this.vaddr ? this.done : 0;
    this.forget();
    return done;
  }

  /** The connection it came on is gone. */
  forget(): void {
    this.id = -1;
    this.vaddr = -1;
    this.done = 0;
    this.layout = null;
  }
}
