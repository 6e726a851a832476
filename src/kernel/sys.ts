import os from "node:os";
import { native, type Arg } from "./native.js";
import { FerryError } from "../errors.js";

/** x86_64 system call numbers (the machine's headers are older than the kernel: ours are explicit). */
export const NR = {
  read: 0, write: 1, close: 3, lseek: 8, mmap: 9, mprotect: 10, munmap: 11, brk: 12,
  rt_sigaction: 13, rt_sigprocmask: 14, ioctl: 16, pread64: 17, pwrite64: 18, mremap: 25,
  madvise: 28, shmget: 29, shmat: 30, shmctl: 31, dup: 32, getitimer: 36, setitimer: 38, getpid: 39, socket: 41, connect: 42,
  sendto: 44, recvfrom: 45, sendmsg: 46, recvmsg: 47, shutdown: 48, bind: 49, listen: 50,
  getsockname: 51, getpeername: 52, socketpair: 53, setsockopt: 54, getsockopt: 55, wait4: 61, kill: 62,
  fcntl: 72, ftruncate: 77, chdir: 80, fchdir: 81, umask: 95, ptrace: 101, setpgid: 109,
  setsid: 112, setgroups: 116, setresuid: 117, setresgid: 119, getpgid: 121, getsid: 124,
  rt_sigqueueinfo: 129, sigaltstack: 131, personality: 135, prctl: 157, arch_prctl: 158,
  chroot: 161, gettid: 186, tkill: 200, futex: 202, set_tid_address: 218, timer_create: 222,
  timer_settime: 223, timer_gettime: 224, timer_getoverrun: 225, timer_delete: 226, clock_gettime: 228, epoll_wait: 232,
  exit_group: 231, epoll_ctl: 233, tgkill: 234, openat: 257, set_robust_list: 273, get_robust_list: 274,
  tee: 276, signalfd4: 289, timerfd_create: 283, timerfd_settime: 286, timerfd_gettime: 287,
  eventfd2: 290, inotify_init1: 294, inotify_add_watch: 254, inotify_rm_watch: 255, open_by_handle_at: 304, epoll_create1: 291, dup3: 292, pipe2: 293, rt_tgsigqueueinfo: 297,
  prlimit64: 302, process_vm_readv: 310, process_vm_writev: 311, kcmp: 312, memfd_create: 319,
  userfaultfd: 323, rseq: 334, pidfd_send_signal: 424, pidfd_open: 434, clone3: 435,
  close_range: 436, pidfd_getfd: 438,
} as const;

const ERRNO_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(os.constants.errno).map(([k, v]) => [v, k]),
);
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/** A failed system call: `errno` is positive, `code` is its name (ESRCH, EPERM ...). */
export class SyscallError extends FerryError {
  readonly errno: number;
  constructor(what: string, errno: number) {
    super(errnoName(errno), `${what}: ${errnoName(errno)}`);
    this.errno = errno;
  }
}

/** Raw system call; returns the raw result (negative errno on failure). */
export function rawSyscall(nr: number, ...args: Arg[]): bigint {
  return native.syscall(nr, ...args);
}

/** System call that throws SyscallError on failure and returns the result as a number. */
export function sys(what: string, nr: number, ...args: Arg[]): number {
  const r = native.syscall(nr, ...args);
  if (r < 0n && r > -4096n) throw new SyscallError(what, Number(-r));
  return Number(r);
}

/** Same as sys() but keeps the full 64-bit result (addresses). */
export function sysBig(what: string, nr: number, ...args: Arg[]): bigint {
  const r = native.syscall(nr, ...args);
  if (r < 0n && r > -4096n) throw new SyscallError(what, Number(-r));
  return r;
}

export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;

export const O = {
  RDONLY: 0, WRONLY: 1, RDWR: 2, ACCMODE: 3, CREAT: 0o100, EXCL: 0o200, NOCTTY: 0o400,
  TRUNC: 0o1000, APPEND: 0o2000, NONBLOCK: 0o4000, DIRECTORY: 0o200000, CLOEXEC: 0o2000000,
  PATH: 0o10000000, LARGEFILE: 0o100000,
} as const;

/** fcntl commands */
export const F = { GETFD: 1, SETFD: 2, GETFL: 3, SETFL: 4, DUPFD_CLOEXEC: 1030 } as const;

export const PROT = { NONE: 0, READ: 1, WRITE: 2, EXEC: 4 } as const;
export const MAP = {
  SHARED: 0x01, PRIVATE: 0x02, FIXED: 0x10, ANONYMOUS: 0x20, GROWSDOWN: 0x0100,
  NORESERVE: 0x4000, FIXED_NOREPLACE: 0x100000, POPULATE: 0x8000,
} as const;

export const SIG = {
  HUP: 1, INT: 2, TRAP: 5, KILL: 9, USR1: 10, SEGV: 11, USR2: 12, PIPE: 13, ALRM: 14, TERM: 15,
  CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22,
} as const;
export const NSIG = 64;
/** RLIMIT_CPU .. RLIMIT_RTTIME */
export const RLIMIT_COUNT = 16;

/** Block this thread for `ms` (synchronous code that waits on the kernel: retries, a task's end). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Little helpers to build and read C structs in Buffers. */
export function u64(buf: Buffer, off: number): bigint {
  return buf.readBigUInt64LE(off);
}
export function setU64(buf: Buffer, off: number, v: bigint | number): void {
  buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), off);
}
export function cstring(s: string): Buffer {
  return Buffer.concat([Buffer.from(s), Buffer.from([0])]);
}
