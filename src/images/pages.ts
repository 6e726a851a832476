import fs from "node:fs";
import { FerryError } from "../errors.js";
import { crc32, crc32At, createImageFile } from "./store.js";
import type { PageRunImage } from "./types.js";
import type { PageHelper } from "./pageHelper.js";
import { MAP, NR, PAGE_SIZE, PROT, sys, sysBig } from "../kernel/sys.js";

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
   * and one checksummed run per range (per MAX_RUN_PAGES of it). With a helper and `data` in a
   * SharedArrayBuffer, the helper writes it: returns the job to wait for before `data` is
   * reused, and before the writer is closed (0: written already).
   */
  addBatch(data: Buffer, ranges: { addr: number; len: number }[], helper: PageHelper | null = null): number {
    let off = 0;
    for (const r of ranges) {
      for (let done = 0; done < r.len; done += MAX_RUN_BYTES) {
        const len = Math.min(MAX_RUN_BYTES, r.len - done);
        this.runs.push({ vaddr: r.addr + done, nrPages: len / PAGE_SIZE, offset: this.offset + off, crc32: crc32(data.subarray(off, off + len)) });
        off += len;
      }
    }
    if (off !== data.length) throw new RangeError(`addBatch: ${data.length} bytes of data for ${off} bytes of pages`);
    let job = 0;
    if (helper && data.buffer instanceof SharedArrayBuffer) {
      job = helper.post({ kind: "write", file: this.file, fd: this.fd, data: data.buffer, start: data.byteOffset, len: data.length, position: this.offset });
    } else {
      let done = 0;
      while (done < data.length) done += fs.writeSync(this.fd, data, done, data.length - done, this.offset + done);
    }
    this.offset += data.length;
    this.pages += data.length / PAGE_SIZE;
    return job;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** Pages of one run, verified, mapped read-only in ferry's memory at `at` until the sink returns. */
export interface MappedRun {
  vaddr: number;
  len: number;
  at: bigint;
}

/** Runs contiguous in the file are mapped together, up to this many bytes at a time. */
const WINDOW = 16 << 20;

/**
 * Reads runs back without copying them: windows of the page file are mapped into ferry's memory
 * (page cache, read-only), and every run's checksum is verified before the data is handed on.
 */
export class PagesReader {
  private fd: number;
  private size: number;

  constructor(readonly file: string) {
    try {
      this.fd = fs.openSync(file, "r");
    } catch {
      throw new FerryError("FERRY_IMAGE_MISSING", `${file}: missing page data`);
    }
    this.size = fs.fstatSync(this.fd).size;
  }

  /**
   * Calls `sink` with the runs of each window, in file order. Without a helper every run is
   * verified before `sink` sees its window. With one (once it is up), the helper verifies a window while `sink`
   * uses it (the caller must not let the process run before forEach has returned), and a bad
   * run throws once `sink` is done with its window.
   */
  forEach(runs: PageRunImage[], sink: (runs: MappedRun[]) => void, helper: PageHelper | null = null): void {
    runs.forEach((r, i) => this.check(r, i)); // whole and inside the file: mapping past its end would SIGBUS
    let i = 0;
    while (i < runs.length) {
      let j = i, bytes = 0;
      while (j < runs.length && runs[j].offset === runs[i].offset + bytes && bytes + runs[j].nrPages * PAGE_SIZE <= WINDOW) {
        bytes += runs[j].nrPages * PAGE_SIZE;
        j++;
      }
      const base = sysBig(`mmap ${this.file}`, NR.mmap, 0, bytes, PROT.READ, MAP.SHARED, this.fd, runs[i].offset);
      let job = 0;
      try {
        let off = 0;
        const window = runs.slice(i, j).map((run) => {
          const len = run.nrPages * PAGE_SIZE, at = base + BigInt(off);
          off += len;
          return { ...run, len, at };
        });
        if (helper?.ready) job = helper.post({ kind: "verify", file: this.file, runs: window });
        else for (const run of window) this.verify(run);
        sink(window.map(({ vaddr, len, at }) => ({ vaddr, len, at })));
        if (job) helper!.waitFor(job);
      } finally {
        if (job) {
          try {
            helper!.waitFor(job); // the helper may still read the window
          } catch { /* reported above, or the sink's own error wins */ }
        }
        sys("munmap", NR.munmap, base, bytes);
      }
      i = j;
    }
  }

  private verify(run: PageRunImage & { at: bigint; len: number }): void {
    if (crc32At(run.at, run.len) !== run.crc32) {
      throw new FerryError("FERRY_IMAGE_CORRUPT", `${this.file}: checksum mismatch at offset ${run.offset} (pages at 0x${run.vaddr.toString(16)})`);
    }
  }

  private check(run: PageRunImage, i: number): void {
    const whole = (n: number) => Number.isSafeInteger(n) && n >= 0 && n % PAGE_SIZE === 0;
    if (!Number.isInteger(run.nrPages) || run.nrPages < 1 || run.nrPages > MAX_RUN_PAGES || !whole(run.offset) || !whole(run.vaddr)) {
      throw new FerryError("FERRY_IMAGE_CORRUPT", `${this.file}: page run ${i} is not a valid run (${run.nrPages} pages at offset ${run.offset})`);
    }
    if (run.offset + run.nrPages * PAGE_SIZE > this.size) {
      throw new FerryError("FERRY_IMAGE_CORRUPT", `${this.file}: truncated at offset ${this.size} (page run ${i} ends at ${run.offset + run.nrPages * PAGE_SIZE})`);
    }
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
