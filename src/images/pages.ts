import fs from "node:fs";
import { FerryError } from "../errors.js";
import { crc32, createImageFile } from "./store.js";
import type { PageRunImage } from "./types.js";
import { PAGE_SIZE } from "../kernel/sys.js";

/** Longest run written as one checksummed chunk: a bad byte is located within 1 MiB. */
export const MAX_RUN_PAGES = 256;
const MAX_RUN_BYTES = MAX_RUN_PAGES * PAGE_SIZE;

/** Appends page runs to pages-PID.img and keeps their index. Streams: nothing is buffered. */
export class PagesWriter {
  readonly runs: PageRunImage[] = [];
  private fd: number;
  private offset = 0;
  pages = 0;

  constructor(readonly file: string) {
    this.fd = createImageFile(file);
  }

  /** `data` holds whole pages starting at `vaddr`. */
  add(vaddr: number, data: Buffer): void {
    this.addBatch(data, [{ addr: vaddr, len: data.length }]);
  }

  /**
   * `data` holds the pages of `ranges`, one range after the other: one write for all of them,
   * and one checksummed run per range (per MAX_RUN_PAGES of it).
   */
  addBatch(data: Buffer, ranges: { addr: number; len: number }[]): void {
    let off = 0;
    for (const r of ranges) {
      for (let done = 0; done < r.len; done += MAX_RUN_BYTES) {
        const len = Math.min(MAX_RUN_BYTES, r.len - done);
        this.runs.push({ vaddr: r.addr + done, nrPages: len / PAGE_SIZE, offset: this.offset + off, crc32: crc32(data.subarray(off, off + len)) });
        off += len;
      }
    }
    if (off !== data.length) throw new RangeError(`addBatch: ${data.length} bytes of data for ${off} bytes of pages`);
    let done = 0;
    while (done < data.length) done += fs.writeSync(this.fd, data, done, data.length - done, this.offset + done);
    this.offset += data.length;
    this.pages += data.length / PAGE_SIZE;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/**
 * Reads runs back, verifying each checksum before the data is used. `batch` groups adjacent runs
 * into one read of at most `maxBytes`.
 */
export class PagesReader {
  private fd: number;
  private buf: Buffer;

  constructor(readonly file: string, maxBytes = 4 << 20) {
    try {
      this.fd = fs.openSync(file, "r");
    } catch {
      throw new FerryError("FERRY_IMAGE_MISSING", `${file}: missing page data`);
    }
    this.buf = Buffer.allocUnsafe(Math.max(maxBytes, MAX_RUN_PAGES * PAGE_SIZE));
  }

  /** Calls `sink(vaddr, data)` for every run, in file order, in batches of contiguous runs. */
  forEach(runs: PageRunImage[], sink: (pieces: { vaddr: number; data: Buffer }[]) => void): void {
    const whole = (n: number) => Number.isSafeInteger(n) && n >= 0 && n % PAGE_SIZE === 0;
    runs.forEach((run, i) => {
      if (!Number.isInteger(run.nrPages) || run.nrPages < 1 || run.nrPages > MAX_RUN_PAGES || !whole(run.offset) || !whole(run.vaddr)) {
        throw new FerryError("FERRY_IMAGE_CORRUPT", `${this.file}: page run ${i} is not a valid run (${run.nrPages} pages at offset ${run.offset})`);
      }
    });
    let i = 0;
    while (i < runs.length) {
      let j = i, bytes = 0;
      while (j < runs.length && runs[j].offset === runs[i].offset + bytes && bytes + runs[j].nrPages * PAGE_SIZE <= this.buf.length) {
        bytes += runs[j].nrPages * PAGE_SIZE;
        j++;
      }
      if (j === i) throw new FerryError("FERRY_IMAGE_CORRUPT", `${this.file}: page run ${i} is larger than any valid run`);
      let got = 0;
      while (got < bytes) {
        const n = fs.readSync(this.fd, this.buf, got, bytes - got, runs[i].offset + got);
        if (n === 0) throw new FerryError("FERRY_IMAGE_CORRUPT", `${this.file}: truncated at offset ${runs[i].offset + got}`);
        got += n;
      }
      const pieces: { vaddr: number; data: Buffer }[] = [];
      let off = 0;
      for (let k = i; k < j; k++) {
        const data = this.buf.subarray(off, off + runs[k].nrPages * PAGE_SIZE);
        if (crc32(data) !== runs[k].crc32) {
          throw new FerryError("FERRY_IMAGE_CORRUPT", `${this.file}: checksum mismatch at offset ${runs[k].offset} (pages at 0x${runs[k].vaddr.toString(16)})`);
        }
        pieces.push({ vaddr: runs[k].vaddr, data });
        off += data.length;
      }
      sink(pieces);
      i = j;
    }
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
