import { rawIoctl } from "../kernel/ioctl.js";
import { UFFDIO_IOCTL } from "../kernel/uffd.js";

/**
 * The two ioctls that put memory in place, without exceptions on the hot path: how far they got
 * and the errno that stopped them (EEXIST: a page is already there; EAGAIN: an event is unread;
 * ENOENT: no registered mapping there any more; ESRCH: the address space is gone).
 */
export class UffdFiller {
  /** struct buffers reused by every call */
  private readonly copyArg = Buffer.alloc(40);
  private readonly zeroArg = Buffer.alloc(32);
  private readonly rangeArg = Buffer.alloc(16);

  /** UFFDIO_COPY of `len` bytes from our address `src` (src >= 0), else UFFDIO_ZEROPAGE. */
  fill(uffd: number, dst: number, src: number, len: number): { done: number; errno: number } {
    let arg: Buffer, req: number, resultAt: number;
    if (src >= 0) {
      arg = this.copyArg; // uffdio_copy: dst, src, len, mode, copy (result)
      arg.writeBigUInt64LE(BigInt(dst), 0);
      arg.writeBigUInt64LE(BigInt(src), 8);
      arg.writeBigUInt64LE(BigInt(len), 16);
      arg.writeBigUInt64LE(0n, 24);
      arg.writeBigInt64LE(0n, 32);
      req = UFFDIO_IOCTL.COPY;
      resultAt = 32;
    } else {
      arg = this.zeroArg; // uffdio_zeropage: range (start, len), mode, zeropage (result)
      arg.writeBigUInt64LE(BigInt(dst), 0);
      arg.writeBigUInt64LE(BigInt(len), 8);
      arg.writeBigUInt64LE(0n, 16);
      arg.writeBigInt64LE(0n, 24);
      req = UFFDIO_IOCTL.ZEROPAGE;
      resultAt = 24;
    }
    const r = rawIoctl(uffd, req, arg);
    const result = Number(arg.readBigInt64LE(resultAt));
    const done = result > 0 ? result : 0;
    if (r >= 0n) return { done: done || len, errno: 0 };
    return { done, errno: Number(-r) };
  }

  /** Wake the threads waiting on [start, start+len) (after the page got there some other way). */
  wake(uffd: number, start: number, len: number): void {
    this.rangeArg.writeBigUInt64LE(BigInt(start), 0);
    this.rangeArg.writeBigUInt64LE(BigInt(len), 8);
    rawIoctl(uffd, UFFDIO_IOCTL.WAKE, this.rangeArg);
  }
}
