import fs from "node:fs";
import { native } from "../src/kernel/native.js";
import { NR, O, rawSyscall, sys } from "../src/kernel/sys.js";

/*
 * A second way to fill a new process's memory, measured beside process_vm_writev: UFFDIO_COPY
 * allocates each page and copies into it without zeroing it first and without the fault path.
 * The probe fills fresh memory of our own, registered with a userfaultfd (root: allowed here).
 * Raw request numbers (include/uapi/linux/userfaultfd.h), so that the benchmark stands alone.
 */
const UFFD_API = 0xaa;
const UFFDIO_API = 0xc018aa3f; // _IOWR(0xaa, 0x3f, struct uffdio_api: 24 bytes)
const UFFDIO_REGISTER = 0xc020aa00; // _IOWR(0xaa, 0x00, struct uffdio_register: 32 bytes)
const UFFDIO_REGISTER_MODE_MISSING = 1;
const UFFDIO_COPY = 0xc028aa03; // _IOWR(0xaa, 0x03, struct uffdio_copy: 40 bytes)
const PAGE = 4096;

/** Milliseconds to fill `bytes` of fresh memory with UFFDIO_COPY from `window`, `piece` bytes per call. */
export function uffdCopyColdMs(window: Buffer, bytes: number, piece: number): number {
  const region = Buffer.allocUnsafeSlow(bytes + 2 * PAGE); // a fresh mmap from malloc: no page is there yet
  const start = Math.ceil(Number(native.addressOf(region)) / PAGE) * PAGE;
  const uffd = sys("userfaultfd", NR.userfaultfd, O.CLOEXEC | O.NONBLOCK);
  try {
    const api = Buffer.alloc(24);
    api.writeBigUInt64LE(BigInt(UFFD_API), 0);
    sys("UFFDIO_API", NR.ioctl, uffd, UFFDIO_API, api);
    const reg = Buffer.alloc(32);
    reg.writeBigUInt64LE(BigInt(start), 0);
    reg.writeBigUInt64LE(BigInt(bytes), 8);
    reg.writeBigUInt64LE(BigInt(UFFDIO_REGISTER_MODE_MISSING), 16);
    sys("UFFDIO_REGISTER", NR.ioctl, uffd, UFFDIO_REGISTER, reg);
    const copy = Buffer.alloc(40);
    const src = native.addressOf(window);
    const t0 = performance.now();
    for (let off = 0; off < bytes; off += piece) {
      const len = Math.min(piece, bytes - off);
      copy.writeBigUInt64LE(BigInt(start + off), 0);
      copy.writeBigUInt64LE(src, 8);
      copy.writeBigUInt64LE(BigInt(len), 16);
      copy.writeBigUInt64LE(0n, 24);
      const r = rawSyscall(NR.ioctl, uffd, UFFDIO_COPY, copy);
      if (r < 0n) throw new Error(`UFFDIO_COPY at +${off}: errno ${-r}`);
    }
    const ms = performance.now() - t0;
    region[0] = region[0]; // keep `region` alive until here
    return ms;
  } finally {
    fs.closeSync(uffd); // unregisters the range
  }
}
