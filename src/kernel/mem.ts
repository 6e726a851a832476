import fs from "node:fs";
import { native } from "./native.js";
import { NR, rawSyscall, SyscallError, PAGE_SIZE } from "./sys.js";

/** Largest single process_vm_readv/writev: the kernel caps iovec counts, not sizes; 1 MiB+ batches run at memcpy speed. */
const IOV_MAX = 1024;

function iovecs(parts: { addr: number | bigint; len: number }[]): Buffer {
  const b = Buffer.alloc(16 * parts.length);
  parts.forEach((p, i) => {
    b.writeBigUInt64LE(BigInt(p.addr), i * 16);
    b.writeBigUInt64LE(BigInt(p.len), i * 16 + 8);
  });
  return b;
}

/**
 * Copy `remote` ranges of process `pid` into `local` (one contiguous buffer, in order).
 * Returns the number of bytes copied (less than asked when a range is not mapped).
 */
export function vmRead(pid: number, local: Buffer, remote: { addr: number; len: number }[]): number {
  return vmTransfer(NR.process_vm_readv, pid, native.addressOf(local), remote);
}
export function vmWrite(pid: number, local: Buffer, remote: { addr: number; len: number }[]): number {
  return vmTransfer(NR.process_vm_writev, pid, native.addressOf(local), remote);
}
/** vmWrite from an address of ours that is no Buffer (a mapped window of a file). */
export function vmWriteFrom(pid: number, local: bigint, remote: { addr: number; len: number }[]): number {
  return vmTransfer(NR.process_vm_writev, pid, local, remote);
}

function vmTransfer(nr: number, pid: number, local: bigint, remote: { addr: number; len: number }[]): number {
  let done = 0;
  for (let i = 0; i < remote.length; i += IOV_MAX) {
    const part = remote.slice(i, i + IOV_MAX);
    const len = part.reduce((s, p) => s + p.len, 0);
    const liov = iovecs([{ addr: local + BigInt(done), len }]);
    const riov = iovecs(part);
    const r = rawSyscall(nr, pid, liov, 1, riov, part.length, 0);
    if (r < 0n) throw new SyscallError(nr === NR.process_vm_readv ? `process_vm_readv(${pid})` : `process_vm_writev(${pid})`, Number(-r));
    done += Number(r);
    if (Number(r) < len) return done;
  }
  return done;
}

export function readMem(pid: number, addr: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  const n = vmRead(pid, b, [{ addr, len }]);
  if (n !== len) throw new SyscallError(`read ${len} bytes at 0x${addr.toString(16)} of ${pid}`, 14);
  return b;
}
export function writeMem(pid: number, addr: number, data: Buffer): void {
  const n = vmWrite(pid, data, [{ addr, len: data.length }]);
  if (n !== data.length) throw new SyscallError(`write ${data.length} bytes at 0x${addr.toString(16)} of ${pid}`, 14);
}

/** Write through /proc/PID/mem: reaches read-only and PROT_NONE pages too (FOLL_FORCE). */
export function pokeMem(pid: number, addr: number, data: Buffer): void {
  const fd = fs.openSync(`/proc/${pid}/mem`, "r+");
  try {
    let off = 0;
    while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off, addr + off);
  } finally {
    fs.closeSync(fd);
  }
}
export function peekMem(pid: number, addr: number, len: number): Buffer {
  const fd = fs.openSync(`/proc/${pid}/mem`, "r");
  try {
    const b = Buffer.alloc(len);
    let off = 0;
    while (off < len) {
      const n = fs.readSync(fd, b, off, len - off, addr + off);
      if (n === 0) break;
      off += n;
    }
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

/** Bits of a /proc/PID/pagemap entry. */
export const PM = {
  PRESENT: 1n << 63n,
  SWAPPED: 1n << 62n,
  FILE_OR_SHARED: 1n << 61n,
  EXCLUSIVE: 1n << 56n,
  SOFT_DIRTY: 1n << 55n,
  GUARD: 1n << 58n,
} as const;

/** Read pagemap entries for [start, end). */
export function readPagemap(fd: number, start: number, end: number): BigUint64Array {
  const n = (end - start) / PAGE_SIZE;
  const out = new BigUint64Array(n);
  const view = Buffer.from(out.buffer);
  let off = 0;
  const pos = (start / PAGE_SIZE) * 8;
  while (off < view.length) {
    const r = fs.readSync(fd, view, off, view.length - off, pos + off);
    if (r === 0) break;
    off += r;
  }
  return out;
}
