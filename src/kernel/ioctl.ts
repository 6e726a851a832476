import { NR, sys, rawSyscall } from "./sys.js";
import type { Arg } from "./native.js";

/**
 * ioctl request numbers, computed as the kernel's <asm-generic/ioctl.h> does on x86_64:
 *   bits 31..30 direction (1 = write: user -> kernel, 2 = read: kernel -> user), 29..16 size of
 *   the argument struct, 15..8 "type" (the driver's magic byte), 7..0 number.
 * We compute them instead of copying hex constants: the machine's headers (6.1) lack the newer
 * ones, and a wrong struct size silently gives ENOTTY.
 */
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;

function ioc(dir: number, type: number, nr: number, size: number): number {
  if (size >= 1 << 14) throw new RangeError(`ioctl argument of ${size} bytes is too large`);
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}
export function _IO(type: number, nr: number): number {
  return ioc(IOC_NONE, type, nr, 0);
}
export function _IOR(type: number, nr: number, size: number): number {
  return ioc(IOC_READ, type, nr, size);
}
export function _IOW(type: number, nr: number, size: number): number {
  return ioc(IOC_WRITE, type, nr, size);
}
export function _IOWR(type: number, nr: number, size: number): number {
  return ioc(IOC_READ | IOC_WRITE, type, nr, size);
}

/** ioctl(2) that throws SyscallError (errno name in `code`) on failure. */
export function ioctl(what: string, fd: number, request: number, arg: Arg = 0): number {
  return sys(what, NR.ioctl, fd, request, arg);
}
/** ioctl(2) returning the raw result: negative errno on failure (for paths where errors are expected). */
export function rawIoctl(fd: number, request: number, arg: Arg = 0): bigint {
  return rawSyscall(NR.ioctl, fd, request, arg);
}
