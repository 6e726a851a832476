import fs from "node:fs";
import { NR, O, rawSyscall, SyscallError } from "./sys.js";
import { _IO, _IOR, _IOWR, ioctl, rawIoctl } from "./ioctl.js";
import { native } from "./native.js";

/*
 * userfaultfd: constants and thin typed helpers, as in the kernel's
 * include/uapi/linux/userfaultfd.h (the machine's 6.1 headers lack WP_ASYNC, MOVE, ...).
 * Addresses are numbers, like everywhere in ferry: user space ends below 2^47.
 */

/** The only API version there is; UFFDIO_API must be the first ioctl on a new uffd. */
export const UFFD_API = 0xaa;
/** ioctl "type" byte of userfaultfd and of /dev/userfaultfd. */
const UFFDIO = 0xaa;

/** Feature bits asked for in UFFDIO_API (and reported back as supported). */
export const UFFD_FEATURE = {
  PAGEFAULT_FLAG_WP: 1 << 0,
  EVENT_FORK: 1 << 1, // fork of a registered process: new uffd for the child (needs CAP_SYS_PTRACE)
  EVENT_REMAP: 1 << 2, // mremap of a registered range
  EVENT_REMOVE: 1 << 3, // madvise(DONTNEED/REMOVE): the process wants zeros there
  MISSING_HUGETLBFS: 1 << 4,
  MISSING_SHMEM: 1 << 5, // MISSING mode on shmem / MAP_SHARED|MAP_ANONYMOUS
  EVENT_UNMAP: 1 << 6, // munmap of a registered range
  SIGBUS: 1 << 7, // faults raise SIGBUS (EFAULT for kernel accesses) instead of waiting
  THREAD_ID: 1 << 8, // pagefault messages carry the faulting thread's id
  MINOR_HUGETLBFS: 1 << 9,
  MINOR_SHMEM: 1 << 10,
  EXACT_ADDRESS: 1 << 11, // fault address not rounded down to the page
  WP_HUGETLBFS_SHMEM: 1 << 12,
  WP_UNPOPULATED: 1 << 13, // write-protect also pages never touched (anonymous)
  POISON: 1 << 14,
  WP_ASYNC: 1 << 15, // the kernel resolves WP faults itself; PAGEMAP_SCAN reads the dirty set
  MOVE: 1 << 16, // UFFDIO_MOVE
} as const;
export type UffdFeatureName = keyof typeof UFFD_FEATURE;

/** Flags of the userfaultfd(2) system call / USERFAULTFD_IOC_NEW. */
export const UFFD_USER_MODE_ONLY = 1;

/** Modes of UFFDIO_REGISTER. */
export const UFFDIO_REGISTER_MODE = { MISSING: 1, WP: 2, MINOR: 4 } as const;

/** Numbers of the ioctls (their bit index in the `ioctls` masks that API and REGISTER return). */
export const _UFFDIO = {
  REGISTER: 0x00, UNREGISTER: 0x01, WAKE: 0x02, COPY: 0x03, ZEROPAGE: 0x04, MOVE: 0x05,
  WRITEPROTECT: 0x06, CONTINUE: 0x07, POISON: 0x08, API: 0x3f,
} as const;

/**
 * ioctl request numbers. The size is the argument struct's:
 *   uffdio_api 24 (api, features, ioctls), uffdio_register 32 (range, mode, ioctls),
 *   uffdio_range 16 (start, len), uffdio_copy 40 (dst, src, len, mode, copy),
 *   uffdio_zeropage 32 (range, mode, zeropage), uffdio_move 40 (dst, src, len, mode, move),
 *   uffdio_writeprotect 24 (range, mode), uffdio_continue/poison 32 (range, mode, result).
 * UNREGISTER and WAKE are _IOR although the kernel reads them: a historical mistake kept for ABI.
 */
export const UFFDIO_IOCTL = {
  API: _IOWR(UFFDIO, _UFFDIO.API, 24), // 0xc018aa3f
  REGISTER: _IOWR(UFFDIO, _UFFDIO.REGISTER, 32), // 0xc020aa00
  UNREGISTER: _IOR(UFFDIO, _UFFDIO.UNREGISTER, 16), // 0x8010aa01
  WAKE: _IOR(UFFDIO, _UFFDIO.WAKE, 16), // 0x8010aa02
  COPY: _IOWR(UFFDIO, _UFFDIO.COPY, 40), // 0xc028aa03
  ZEROPAGE: _IOWR(UFFDIO, _UFFDIO.ZEROPAGE, 32), // 0xc020aa04
  MOVE: _IOWR(UFFDIO, _UFFDIO.MOVE, 40), // 0xc028aa05
  WRITEPROTECT: _IOWR(UFFDIO, _UFFDIO.WRITEPROTECT, 24), // 0xc018aa06
  CONTINUE: _IOWR(UFFDIO, _UFFDIO.CONTINUE, 32), // 0xc020aa07
  POISON: _IOWR(UFFDIO, _UFFDIO.POISON, 32), // 0xc020aa08
} as const;
/** On /dev/userfaultfd: make a new uffd (for when the syscall is restricted). */
export const USERFAULTFD_IOC_NEW = _IO(UFFDIO, 0x00); // 0xaa00

export const UFFDIO_COPY_MODE = { DONTWAKE: 1, WP: 2 } as const;
export const UFFDIO_ZEROPAGE_MODE = { DONTWAKE: 1 } as const;
export const UFFDIO_WRITEPROTECT_MODE = { WP: 1, DONTWAKE: 2 } as const;
export const UFFDIO_MOVE_MODE = { DONTWAKE: 1, ALLOW_SRC_HOLES: 2 } as const;

/** Event codes of struct uffd_msg. */
export const UFFD_EVENT = { PAGEFAULT: 0x12, FORK: 0x13, REMAP: 0x14, REMOVE: 0x15, UNMAP: 0x16 } as const;
export const UFFD_PAGEFAULT_FLAG = { WRITE: 1, WP: 2, MINOR: 4 } as const;
export const UFFD_MSG_SIZE = 32;

/**
 * A new userfaultfd bound to the calling process's mm, close-on-exec and non-blocking (it is
 * watched with libuv polling, never read blockingly). The userfaultfd(2) syscall first; when
 * it is refused (vm.unprivileged_userfaultfd=0 for a non-root user, or seccomp) fall back to
 * /dev/userfaultfd, whose access is governed by file permissions instead.
 */
export function createUffd(opts: { via?: "syscall" | "device"; userModeOnly?: boolean } = {}): { fd: number; via: "syscall" | "device" } {
  const flags = O.CLOEXEC | O.NONBLOCK | (opts.userModeOnly ? UFFD_USER_MODE_ONLY : 0);
  let syscallErrno = 0;
  if (opts.via !== "device") {
    const r = rawSyscall(NR.userfaultfd, flags);
    if (r >= 0n) return { fd: Number(r), via: "syscall" };
    syscallErrno = Number(-r);
    if (opts.via === "syscall") throw new SyscallError("userfaultfd", syscallErrno);
  }
  let dev: number;
  try {
    dev = fs.openSync("/dev/userfaultfd", O.RDWR | O.CLOEXEC);
  } catch (e) {
    if (syscallErrno) throw new SyscallError("userfaultfd (and /dev/userfaultfd cannot be opened)", syscallErrno);
    throw e;
  }
  try {
    return { fd: ioctl("ioctl(/dev/userfaultfd, USERFAULTFD_IOC_NEW)", dev, USERFAULTFD_IOC_NEW, flags), via: "device" };
  } finally {
    fs.closeSync(dev);
  }
}

/**
 * The UFFDIO_API handshake, once per uffd, before anything else. Asking for a feature the kernel
 * lacks fails with EINVAL (EPERM for EVENT_FORK without CAP_SYS_PTRACE). Returns the features
 * the kernel *supports* (not only those asked) and the ioctls allowed on the uffd itself.
 */
export function uffdApi(fd: number, features = 0): { features: number; ioctls: bigint } {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(BigInt(UFFD_API), 0);
  b.writeBigUInt64LE(BigInt(features), 8);
  ioctl("ioctl(UFFDIO_API)", fd, UFFDIO_IOCTL.API, b);
  return { features: Number(b.readBigUInt64LE(8)), ioctls: b.readBigUInt64LE(16) };
}

/** The feature bits set in `mask`, by name. */
export function featureNames(mask: number): UffdFeatureName[] {
  return (Object.keys(UFFD_FEATURE) as UffdFeatureName[]).filter((k) => (mask & UFFD_FEATURE[k]) !== 0);
}

/** Does an `ioctls` mask (from uffdApi or uffdRegister) allow ioctl number `nr` (an _UFFDIO value)? */
export function hasIoctl(mask: bigint, nr: number): boolean {
  return ((mask >> BigInt(nr)) & 1n) === 1n;
}

function range(start: number, len: number, extra = 0): Buffer {
  const b = Buffer.alloc(16 + extra);
  b.writeBigUInt64LE(BigInt(start), 0);
  b.writeBigUInt64LE(BigInt(len), 8);
  return b;
}

/**
 * Register [start, start+len) (page aligned, inside mappings of the uffd's mm) in `mode`
 * (UFFDIO_REGISTER_MODE bits). Returns the ioctls allowed on the range.
 */
export function uffdRegister(fd: number, start: number, len: number, mode: number): bigint {
  const b = range(start, len, 16);
  b.writeBigUInt64LE(BigInt(mode), 16);
  ioctl(`ioctl(UFFDIO_REGISTER, 0x${start.toString(16)}+${len})`, fd, UFFDIO_IOCTL.REGISTER, b);
  return b.readBigUInt64LE(24);
}

export function uffdUnregister(fd: number, start: number, len: number): void {
  ioctl(`ioctl(UFFDIO_UNREGISTER, 0x${start.toString(16)}+${len})`, fd, UFFDIO_IOCTL.UNREGISTER, range(start, len));
}

/** Wake the threads waiting on faults in the range (after ioctls done with DONTWAKE). */
export function uffdWake(fd: number, start: number, len: number): void {
  ioctl(`ioctl(UFFDIO_WAKE, 0x${start.toString(16)}+${len})`, fd, UFFDIO_IOCTL.WAKE, range(start, len));
}

/**
 * The kernel reports partial progress of COPY/ZEROPAGE/MOVE in the struct's last field (bytes
 * done, or -errno) and fails the ioctl with EAGAIN when it stopped early (typically: a
 * non-cooperative event is waiting to be read). Return the bytes done; throw only when none.
 */
function progress(what: string, fd: number, request: number, b: Buffer, resultAt: number): number {
  const r = rawIoctl(fd, request, b);
  const done = Number(b.readBigInt64LE(resultAt));
  if (done > 0) return done;
  if (r < 0n) throw new SyscallError(what, Number(-r));
  return done;
}

/**
 * Atomically fill [dst, dst+len) (missing pages of a MISSING-registered range) with `len` bytes
 * of `src` (a Buffer of ours, or an address in our own memory) and wake the faulting threads.
 * Returns the bytes copied, which may be less than `len` (drain the uffd's events, then retry
 * the rest). Errors are SyscallErrors with `code`: EEXIST (a page is already there), EAGAIN
 * (events pending), ENOENT/ESRCH (the mm or mapping is gone).
 */
export function uffdCopy(fd: number, dst: number, src: Buffer | number, len: number, mode = 0): number {
  const b = Buffer.alloc(40);
  b.writeBigUInt64LE(BigInt(dst), 0);
  b.writeBigUInt64LE(typeof src === "number" ? BigInt(src) : native.addressOf(src), 8);
  b.writeBigUInt64LE(BigInt(len), 16);
  b.writeBigUInt64LE(BigInt(mode), 24);
  return progress(`ioctl(UFFDIO_COPY, 0x${dst.toString(16)}+${len})`, fd, UFFDIO_IOCTL.COPY, b, 32);
}

/** Map zero pages over a missing range (cheaper than copying zeros). Returns bytes done. */
export function uffdZeropage(fd: number, start: number, len: number, mode = 0): number {
  const b = range(start, len, 16);
  b.writeBigUInt64LE(BigInt(mode), 16);
  return progress(`ioctl(UFFDIO_ZEROPAGE, 0x${start.toString(16)}+${len})`, fd, UFFDIO_IOCTL.ZEROPAGE, b, 24);
}

/**
 * Move pages (not copy) from [src, src+len) of the uffd's mm to the missing range at dst.
 * Both must be anonymous and in the same mm. Returns bytes moved.
 */
export function uffdMove(fd: number, dst: number, src: number, len: number, mode = 0): number {
  const b = Buffer.alloc(40);
  b.writeBigUInt64LE(BigInt(dst), 0);
  b.writeBigUInt64LE(BigInt(src), 8);
  b.writeBigUInt64LE(BigInt(len), 16);
  b.writeBigUInt64LE(BigInt(mode), 24);
  return progress(`ioctl(UFFDIO_MOVE, 0x${dst.toString(16)}+${len})`, fd, UFFDIO_IOCTL.MOVE, b, 32);
}

/** Write-protect (protect=true) or un-protect a WP-registered range. */
export function uffdWriteProtect(fd: number, start: number, len: number, protect: boolean, dontWake = false): void {
  const b = range(start, len, 8);
  const mode = (protect ? UFFDIO_WRITEPROTECT_MODE.WP : 0) | (dontWake ? UFFDIO_WRITEPROTECT_MODE.DONTWAKE : 0);
  b.writeBigUInt64LE(BigInt(mode), 16);
  ioctl(`ioctl(UFFDIO_WRITEPROTECT, 0x${start.toString(16)}+${len})`, fd, UFFDIO_IOCTL.WRITEPROTECT, b);
}

/** One struct uffd_msg, decoded. */
export type UffdMsg =
  | { event: "pagefault"; address: number; flags: number; write: boolean; wp: boolean; minor: boolean; tid: number } // tid: 0 without THREAD_ID
  | { event: "fork"; ufd: number } // a new uffd, already installed in *our* fd table
  | { event: "remap"; from: number; to: number; len: number }
  | { event: "remove"; start: number; end: number }
  | { event: "unmap"; start: number; end: number }
  | { event: "unknown"; code: number };

/**
 * Decode one 32-byte struct uffd_msg (packed): u8 event, 7 reserved bytes, then the union at 8:
 *   pagefault: u64 flags @8, u64 address @16, u32 ptid @24 (with THREAD_ID)
 *   fork: u32 ufd @8;  remap: u64 from @8, to @16, len @24;  remove/unmap: u64 start @8, end @16
 */
export function parseUffdMsg(b: Buffer, off = 0): UffdMsg {
  const event = b.readUInt8(off);
  const u64 = (at: number) => Number(b.readBigUInt64LE(off + at));
  switch (event) {
    case UFFD_EVENT.PAGEFAULT: {
      const flags = u64(8);
      return {
        event: "pagefault", address: u64(16), flags, tid: b.readUInt32LE(off + 24),
        write: (flags & UFFD_PAGEFAULT_FLAG.WRITE) !== 0, wp: (flags & UFFD_PAGEFAULT_FLAG.WP) !== 0,
        minor: (flags & UFFD_PAGEFAULT_FLAG.MINOR) !== 0,
      };
    }
    case UFFD_EVENT.FORK:
      return { event: "fork", ufd: b.readUInt32LE(off + 8) };
    case UFFD_EVENT.REMAP:
      return { event: "remap", from: u64(8), to: u64(16), len: u64(24) };
    case UFFD_EVENT.REMOVE:
      return { event: "remove", start: u64(8), end: u64(16) };
    case UFFD_EVENT.UNMAP:
      return { event: "unmap", start: u64(8), end: u64(16) };
    default:
      return { event: "unknown", code: event };
  }
}

/**
 * Read every message waiting on a (non-blocking) uffd, in order. Returns [] when there is none.
 * Handlers must drain all events before resolving faults: while one is unread, COPY gets EAGAIN.
 */
export function readUffdMsgs(fd: number, max = 64): UffdMsg[] {
  const buf = Buffer.alloc(UFFD_MSG_SIZE * max);
  const out: UffdMsg[] = [];
  for (;;) {
    const r = rawSyscall(NR.read, fd, buf, buf.length);
    if (r === -11n /* EAGAIN */) return out;
    if (r === -4n /* EINTR */) continue;
    if (r < 0n) throw new SyscallError("read(userfaultfd)", Number(-r));
    const n = Number(r) / UFFD_MSG_SIZE;
    for (let i = 0; i < n; i++) out.push(parseUffdMsg(buf, i * UFFD_MSG_SIZE));
    if (n < max) return out;
  }
}
