import { PAGE_SIZE } from "../kernel/sys.js";
import { native } from "../kernel/native.js";
import { uffdCopy } from "../kernel/uffd.js";
import { SyscallError } from "../kernel/sys.js";
import { decodePages } from "./pageFrames.js";

const BATCH_PAGES = 256;

/**
 * The agent's copy of the pages sent in pre-copy rounds, by source address (a later copy of a
 * page replaces the earlier one; null: a zero page). Installed into the restored process with
 * UFFDIO_COPY before it resumes, only where the source says the copy is still current.
 */
export class PageStore {
  private readonly pages = new Map<number, Buffer | null>();
  bytes = 0;

  add(vaddr: number, nrPages: number, payload: Buffer): void {
    decodePages(vaddr, nrPages, payload, (addr, page) => {
      this.pages.set(addr, page ? Buffer.from(page) : null);
    });
    this.bytes += payload.length;
  }

  get size(): number {
    return this.pages.size;
  }

  /**
   * Copy the kept pages into the process (its lazy ranges registered MISSING on `uffd`).
   * Zero pages are left missing: they read as zeros either way. Returns the pages installed.
   */
  install(uffd: number, keep: [number, number][]): number {
    const staging = Buffer.allocUnsafe(BATCH_PAGES * PAGE_SIZE);
    const base = Number(native.addressOf(staging));
    let installed = 0;
    const flush = (start: number, n: number) => {
      if (!n) return;
      let done = 0;
      while (done < n * PAGE_SIZE) {
        try {
          done += uffdCopy(uffd, start + done, base + done, n * PAGE_SIZE - done);
        } catch (e) {
          if (!(e instanceof SyscallError) || e.code !== "EEXIST") throw e;
          done += PAGE_SIZE; // already there (a page the images carried): theirs is current
        }
      }
      installed += n;
    };
    for (const [start, nrPages] of keep) {
      let runStart = start, n = 0;
      for (let k = 0; k < nrPages; k++) {
        const addr = start + k * PAGE_SIZE;
        const page = this.pages.get(addr);
        if (!page || n === BATCH_PAGES) {
          flush(runStart, n);
          n = 0;
          runStart = addr + (page ? 0 : PAGE_SIZE);
          if (!page) continue;
        }
        page.copy(staging, n * PAGE_SIZE);
        n++;
      }
      flush(runStart, n);
    }
    this.pages.clear();
    return installed;
  }
}
