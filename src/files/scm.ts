import fs from "node:fs";
import { native } from "../kernel/native.js";
import { NR, rawSyscall, SyscallError } from "../kernel/sys.js";
import { SOL_SOCKET } from "./sockopt.js";

/*
 * sendmsg/recvmsg with file descriptors riding along (SCM_RIGHTS), for the raw system call:
 * struct msghdr, its iovec and the cmsg are built here. Every buffer a header points to is also
 * passed to the system call as an unused extra argument, which keeps it alive through the call.
 */

const SCM_RIGHTS = 1;
export const MSG = { PEEK: 2, TRUNC: 0x20, DONTWAIT: 0x40, CTRUNC: 0x8, CMSG_CLOEXEC: 0x40000000 } as const;
/** SCM_MAX_FD (253) fds: CMSG_SPACE(253 * 4) */
const CONTROL_SPACE = 1032;

/** struct msghdr (56 bytes) followed by its one iovec. */
function msghdr(data: Buffer, control: Buffer | null, length = data.length): Buffer {
  const hdr = Buffer.alloc(72);
  hdr.writeBigUInt64LE(native.addressOf(data), 56);
  hdr.writeBigUInt64LE(BigInt(length), 64);
  hdr.writeBigUInt64LE(native.addressOf(hdr) + 56n, 16);
  hdr.writeBigUInt64LE(1n, 24);
  if (control && control.length) {
    hdr.writeBigUInt64LE(native.addressOf(control), 32);
    hdr.writeBigUInt64LE(BigInt(control.length), 40);
  }
  return hdr;
}

/** One SCM_RIGHTS cmsg carrying `fds` (CMSG_LEN = 16 + 4n, padded to 8). */
function rightsControl(fds: number[]): Buffer {
  if (!fds.length) return Buffer.alloc(0);
  const len = 16 + 4 * fds.length;
  const c = Buffer.alloc((len + 7) & ~7);
  c.writeBigUInt64LE(BigInt(len), 0);
  c.writeInt32LE(SOL_SOCKET, 8);
  c.writeInt32LE(SCM_RIGHTS, 12);
  fds.forEach((fd, i) => c.writeInt32LE(fd, 16 + 4 * i));
  return c;
}

/** Every fd of the SCM_RIGHTS cmsgs in the first `length` bytes of `control`. */
function rightsIn(control: Buffer, length: number): number[] {
  const fds: number[] = [];
  for (let off = 0; off + 16 <= length; ) {
    const len = Number(control.readBigUInt64LE(off));
    if (len < 16) break;
    if (control.readInt32LE(off + 8) === SOL_SOCKET && control.readInt32LE(off + 12) === SCM_RIGHTS) {
      for (let i = off + 16; i + 4 <= off + len; i += 4) fds.push(control.readInt32LE(i));
    }
    off += (len + 7) & ~7;
  }
  return fds;
}

export interface Received {
  data: Buffer;
  /** fds the message carried, now ferry's own (close-on-exec) */
  fds: number[];
  /** msg_flags: MSG_TRUNC, MSG_CTRUNC */
  flags: number;
}

/** recvmsg of at most `max` bytes with room for any number of fds; null when nothing waits (EAGAIN, MSG_DONTWAIT). */
export function recvWithFds(fd: number, max: number, flags: number): Received | null {
  const data = Buffer.alloc(Math.max(1, max));
  const control = Buffer.alloc(CONTROL_SPACE);
  const hdr = msghdr(data, control, max);
  const r = rawSyscall(NR.recvmsg, fd, hdr, flags | MSG.CMSG_CLOEXEC, data, control);
  if (r === -11n) return null;
  if (r < 0n) throw new SyscallError(flags & MSG.PEEK ? "recvmsg(MSG_PEEK)" : "recvmsg", Number(-r));
  const fds = rightsIn(control, Number(hdr.readBigUInt64LE(40)));
  return { data: Buffer.from(data.subarray(0, Number(r))), fds, flags: hdr.readInt32LE(48) };
}

/**
 * sendmsg of `data` with `fds` attached (they ride on the first byte); returns the bytes sent, or
 * the negative errno.
 */
export function sendWithFds(fd: number, data: Buffer, fds: number[], flags = 0): bigint {
  const control = rightsControl(fds);
  const hdr = msghdr(data, control);
  return rawSyscall(NR.sendmsg, fd, hdr, flags, data, control);
}

export function closeAll(fds: number[]): void {
  for (const fd of fds) fs.closeSync(fd);
}
