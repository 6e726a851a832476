import fs from "node:fs";
import { native } from "../src/kernel/native.js";
import { createUffd, uffdApi, uffdCopy, uffdRegister, UFFDIO_REGISTER_MODE } from "../src/kernel/uffd.js";

/*
 * A second way to fill a new process's memory, measured beside process_vm_writev: UFFDIO_COPY
 * allocates each page and copies into it without zeroing it first and without the fault path.
 * The probe fills fresh memory of our own, registered with a userfaultfd (root: allowed here),
 * through the same helpers (src/kernel/uffd.ts) the lazy-pages daemon uses.
 */
const PAGE = 4096;

/** Milliseconds to fill `bytes` of fresh memory with UFFDIO_COPY from `window`, `piece` bytes per call. */
export function uffdCopyColdMs(window: Buffer, bytes: number, piece: number): number {
  const region = Buffer.allocUnsafeSlow(bytes + 2 * PAGE); // a fresh mmap from malloc: no page is there yet
  const start = Math.ceil(Number(native.addressOf(region)) / PAGE) * PAGE;
  const { fd: uffd } = createUffd({ via: "syscall" });
  try {
    uffdApi(uffd);
    uffdRegister(uffd, start, bytes, UFFDIO_REGISTER_MODE.MISSING);
    const src = Number(native.addressOf(window));
    const t0 = performance.now();
    for (let off = 0; off < bytes;) {
      const done = uffdCopy(uffd, start + off, src, Math.min(piece, bytes - off));
      if (done <= 0) throw new Error(`UFFDIO_COPY at +${off}: nothing copied`);
      off += done;
    }
    const ms = performance.now() - t0;
    region[0] = region[0]; // keep `region` alive until here
    return ms;
  } finally {
    fs.closeSync(uffd); // unregisters the range
  }
}
