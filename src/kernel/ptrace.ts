import { NR, sys, rawSyscall, SyscallError } from "./sys.js";
import { FerryError } from "../errors.js";

export const PTRACE = {
  TRACEME: 0, CONT: 7, KILL: 8, SINGLESTEP: 9, GETREGS: 12, SETREGS: 13, DETACH: 17,
  SYSCALL: 24, SETOPTIONS: 0x4200, GETEVENTMSG: 0x4201, GETSIGINFO: 0x4202, GETREGSET: 0x4204,
  SETREGSET: 0x4205, SEIZE: 0x4206, INTERRUPT: 0x4207, LISTEN: 0x4208, PEEKSIGINFO: 0x4209,
  GETSIGMASK: 0x420a, SETSIGMASK: 0x420b, GET_RSEQ_CONFIGURATION: 0x420f,
} as const;
export const PTRACE_O = {
  TRACESYSGOOD: 1, TRACEFORK: 2, TRACEVFORK: 4, TRACECLONE: 8, TRACEEXEC: 0x10, EXITKILL: 0x100000,
} as const;
export const PTRACE_EVENT_STOP = 128;
export const PEEKSIGINFO_SHARED = 1;
export const NT_PRSTATUS = 1;
export const NT_X86_XSTATE = 0x202;

export const WALL = 0x40000000;
export const WNOHANG = 1;
export const WUNTRACED = 2;

/** Indices of the u64 fields of x86_64 `struct user_regs_struct` (27 words, 216 bytes). */
export const REG = {
  r15: 0, r14: 1, r13: 2, r12: 3, rbp: 4, rbx: 5, r11: 6, r10: 7, r9: 8, r8: 9, rax: 10,
  rcx: 11, rdx: 12, rsi: 13, rdi: 14, orig_rax: 15, rip: 16, cs: 17, eflags: 18, rsp: 19,
  ss: 20, fs_base: 21, gs_base: 22, ds: 23, es: 24, fs: 25, gs: 26,
} as const;
export type RegName = keyof typeof REG;
export const REGS_SIZE = 27 * 8;

/** General registers as a raw struct with typed accessors. */
export class Regs {
  constructor(readonly raw: Buffer = Buffer.alloc(REGS_SIZE)) {}
  get(r: RegName): bigint {
    return this.raw.readBigUInt64LE(REG[r] * 8);
  }
  /** Signed view (rax after a syscall, orig_rax). */
  sget(r: RegName): bigint {
    return this.raw.readBigInt64LE(REG[r] * 8);
  }
  set(r: RegName, v: bigint | number): void {
    this.raw.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), REG[r] * 8);
  }
  clone(): Regs {
    return new Regs(Buffer.from(this.raw));
  }
  toJSON(): Record<string, string> {
    const o: Record<string, string> = {};
    for (const k of Object.keys(REG) as RegName[]) o[k] = "0x" + this.get(k).toString(16);
    return o;
  }
}

export function ptrace(req: number, pid: number, addr: number | bigint | Buffer = 0, data: number | bigint | Buffer = 0): number {
  return sys(`ptrace(${reqName(req)}, ${pid})`, NR.ptrace, req, pid, addr, data);
}
function reqName(req: number): string {
  return Object.entries(PTRACE).find(([, v]) => v === req)?.[0] ?? String(req);
}

export function getRegs(pid: number): Regs {
  const r = new Regs();
  ptrace(PTRACE.GETREGS, pid, 0, r.raw);
  return r;
}
export function setRegs(pid: number, regs: Regs): void {
  ptrace(PTRACE.SETREGS, pid, 0, regs.raw);
}

/** PTRACE_GETREGSET into a buffer of at most `max` bytes; returns the bytes the kernel filled. */
export function getRegset(pid: number, type: number, max: number): Buffer {
  const data = Buffer.alloc(max);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(BigInt(addr(data)), 0);
  iov.writeBigUInt64LE(BigInt(max), 8);
  ptrace(PTRACE.GETREGSET, pid, type, iov);
  return data.subarray(0, Number(iov.readBigUInt64LE(8)));
}
export function setRegset(pid: number, type: number, data: Buffer): void {
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addr(data), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  ptrace(PTRACE.SETREGSET, pid, type, iov);
}

import { native } from "./native.js";
function addr(b: Buffer): bigint {
  return native.addressOf(b);
}

export function getSigmask(pid: number): bigint {
  const b = Buffer.alloc(8);
  ptrace(PTRACE.GETSIGMASK, pid, 8, b);
  return b.readBigUInt64LE(0);
}
export function setSigmask(pid: number, mask: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, mask), 0);
  ptrace(PTRACE.SETSIGMASK, pid, 8, b);
}

/** Pending signals (siginfo_t, 128 bytes each), per-thread or process-wide (shared). */
export function peekSiginfo(pid: number, shared: boolean): Buffer[] {
  const out: Buffer[] = [];
  const args = Buffer.alloc(16);
  const batch = 32;
  const buf = Buffer.alloc(128 * batch);
  for (let off = 0; ; off += batch) {
    args.writeBigUInt64LE(BigInt(off), 0);
    args.writeUInt32LE(shared ? PEEKSIGINFO_SHARED : 0, 8);
    args.writeInt32LE(batch, 12);
    const n = ptrace(PTRACE.PEEKSIGINFO, pid, args, buf);
    for (let i = 0; i < n; i++) out.push(Buffer.from(buf.subarray(i * 128, (i + 1) * 128)));
    if (n < batch) return out;
  }
}

export interface RseqConfig {
  address: bigint;
  length: number;
  flags: number;
  signature: number;
}
export function getRseqConfig(pid: number): RseqConfig {
  const b = Buffer.alloc(24);
  ptrace(PTRACE.GET_RSEQ_CONFIGURATION, pid, 24, b);
  return {
    address: b.readBigUInt64LE(0),
    length: b.readUInt32LE(8),
    signature: b.readUInt32LE(12),
    flags: b.readUInt32LE(16),
  };
}

export interface WaitStatus {
  pid: number;
  raw: number;
  exited: boolean;
  exitCode: number;
  signaled: boolean;
  termSig: number;
  stopped: boolean;
  stopSig: number;
  event: number;
}
export function decodeStatus(pid: number, s: number): WaitStatus {
  const low = s & 0x7f;
  const stopped = (s & 0xff) === 0x7f;
  return {
    pid, raw: s,
    exited: low === 0,
    exitCode: (s >> 8) & 0xff,
    signaled: !stopped && low !== 0,
    termSig: low,
    stopped,
    stopSig: stopped ? (s >> 8) & 0xff : 0,
    event: stopped ? (s >>> 16) & 0xff : 0,
  };
}

/** wait4 on one task (any thread: __WALL). Returns null with WNOHANG when nothing happened. */
export function waitTask(pid: number, flags = 0): WaitStatus | null {
  const st = Buffer.alloc(4);
  for (;;) {
    const r = rawSyscall(NR.wait4, pid, st, flags | WALL, 0);
    if (r === -4n) continue; // EINTR
    if (r < 0n) throw new SyscallError(`wait4(${pid})`, Number(-r));
    if (r === 0n) return null;
    return decodeStatus(Number(r), st.readInt32LE(0));
  }
}

/** Wait until the task reaches a ptrace stop; throws if it died instead. */
export function waitStop(pid: number): WaitStatus {
  const st = waitTask(pid)!;
  if (!st.stopped) {
    const how = st.exited ? `exited with code ${st.exitCode}` : `was killed by signal ${st.termSig}`;
    throw new FerryError("FERRY_TASK_DIED", `process ${pid} ${how} while ferry was working on it`);
  }
  return st;
}
