import fs from "node:fs";
import path from "node:path";
import { native } from "../src/kernel/native.js";
import { vmRead, vmWrite } from "../src/kernel/mem.js";
import { crc32 } from "../src/images/store.js";
import { uffdCopyColdMs } from "./uffdCopy.js";

/**
 * What this machine can do at best, measured in the same run as ferry, so every ferry figure
 * stands beside its physical limit. All in GB/s (10^9 bytes per second), best of `tries`.
 * "Window" is one reused 4 MiB buffer: the shape of ferry's own pipeline (read a batch into a
 * buffer, write it out), where one side of each copy stays in cache.
 */
export interface Limits {
  /** bytes moved by each probe */
  bytes: number;
  /** Buffer.copy between two buffers whose pages are already there (memory to memory) */
  memcpyGBps: number;
  /** process_vm_readv from the stopped victim, 4 MiB calls into the window (a dump's read) */
  vmReadvGBps: number;
  /** process_vm_readv from the victim into a buffer as large as the probe (memory to memory) */
  vmReadvToMemoryGBps: number;
  /** write() from the window to a new file in /dev/shm, 1 MiB per call (a dump's write) */
  shmWriteGBps: number;
  /** read() of that file into the window, 4 MiB per call (a restore's read) */
  shmReadGBps: number;
  /** process_vm_writev from the window into memory no page of which exists yet (a restore's write) */
  vmWritevColdGBps: number;
  /** Buffer.copy from the window into fresh memory: the page-fault cost without the syscall */
  memcpyColdGBps: number;
  /** UFFDIO_COPY from the window into fresh memory, 4 MiB per call: no zeroing, no fault path */
  uffdCopyColdGBps: number;
  /** ferry's page checksum (zlib's CRC-32, PCLMULQDQ-folded where the CPU has it), on the window: CPU work on both sides, not a physical limit */
  crc32GBps: number;
}

const WINDOW = 4 << 20;

function bestOf(tries: number, once: () => number): number {
  let best = Infinity;
  for (let i = 0; i < tries; i++) best = Math.min(best, once());
  return best;
}

function timed(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

/** Call `step(offset, length)` over `bytes` in pieces of `piece`. */
function pieces(bytes: number, piece: number, step: (off: number, len: number) => void): void {
  for (let off = 0; off < bytes; off += piece) step(off, Math.min(piece, bytes - off));
}

const gbps = (bytes: number, ms: number) => bytes / (ms * 1e6);

/** `victim` is a stopped process with `bytes` of readable memory at `addr`; `scratchDir` is in /dev/shm. */
export function measureLimits(victim: { pid: number; addr: number }, bytes: number, scratchDir: string, tries = 3): Limits {
  const window = Buffer.alloc(WINDOW, 0x3c); // filled: its pages exist
  const src = Buffer.alloc(bytes, 0x5a);
  const dst = Buffer.alloc(bytes, 0xa5);

  const memcpyMs = bestOf(tries, () => timed(() => src.copy(dst)));

  const readFromVictim = (into: (off: number, len: number) => Buffer) => () => timed(() => pieces(bytes, WINDOW, (off, len) => {
    const n = vmRead(victim.pid, into(off, len), [{ addr: victim.addr + off, len }]);
    if (n !== len) throw new Error(`process_vm_readv(${victim.pid}) read ${n} of ${len} bytes`);
  }));
  const readvMs = bestOf(tries, readFromVictim((_, len) => window.subarray(0, len)));
  const readvToMemoryMs = bestOf(tries, readFromVictim((off, len) => dst.subarray(off, off + len)));

  const file = path.join(scratchDir, "limits-probe");
  let shmWriteMs = Infinity, shmReadMs = Infinity;
  try {
    for (let i = 0; i < tries; i++) {
      fs.rmSync(file, { force: true }); // every try writes into new tmpfs pages, as a dump does
      shmWriteMs = Math.min(shmWriteMs, timed(() => writeFile(file, window, bytes, 1 << 20)));
      shmReadMs = Math.min(shmReadMs, timed(() => readFile(file, window, bytes)));
    }
  } finally {
    fs.rmSync(file, { force: true });
  }

  // A process may process_vm_writev itself: fresh memory of our own stands for the restored process's.
  const writevColdMs = bestOf(tries, () => {
    const cold = Buffer.allocUnsafeSlow(bytes); // a fresh mmap from malloc: no page is there yet
    const base = Number(native.addressOf(cold));
    return timed(() => pieces(bytes, WINDOW, (off, len) => {
      const n = vmWrite(process.pid, window.subarray(0, len), [{ addr: base + off, len }]);
      if (n !== len) throw new Error(`process_vm_writev(self) wrote ${n} of ${len} bytes`);
    }));
  });
  const memcpyColdMs = bestOf(tries, () => {
    const cold = Buffer.allocUnsafeSlow(bytes);
    return timed(() => pieces(bytes, WINDOW, (off, len) => window.copy(cold, off, 0, len)));
  });

  const uffdCopyMs = bestOf(tries, () => uffdCopyColdMs(window, bytes, WINDOW));

  const crcMs = bestOf(tries, () => timed(() => pieces(bytes, 1 << 20, (off, len) => crc32(window.subarray(off % WINDOW, off % WINDOW + len)))));

  return {
    bytes,
    memcpyGBps: gbps(bytes, memcpyMs),
    vmReadvGBps: gbps(bytes, readvMs),
    vmReadvToMemoryGBps: gbps(bytes, readvToMemoryMs),
    shmWriteGBps: gbps(bytes, shmWriteMs),
    shmReadGBps: gbps(bytes, shmReadMs),
    vmWritevColdGBps: gbps(bytes, writevColdMs),
    memcpyColdGBps: gbps(bytes, memcpyColdMs),
    uffdCopyColdGBps: gbps(bytes, uffdCopyMs),
    crc32GBps: gbps(bytes, crcMs),
  };
}

/** Write `bytes` to a new file, `call` bytes per write(), all taken from `window`. */
function writeFile(file: string, window: Buffer, bytes: number, call: number): void {
  const fd = fs.openSync(file, "w", 0o600);
  try {
    pieces(bytes, call, (off, len) => {
      const from = off % window.length;
      let done = 0;
      while (done < len) done += fs.writeSync(fd, window, from + done, len - done, off + done);
    });
  } finally {
    fs.closeSync(fd);
  }
}

/** Read `bytes` of a file, one window-full per read(). */
function readFile(file: string, window: Buffer, bytes: number): void {
  const fd = fs.openSync(file, "r");
  try {
    pieces(bytes, window.length, (off, len) => {
      let done = 0;
      while (done < len) {
        const n = fs.readSync(fd, window, done, len - done, off + done);
        if (n === 0) throw new Error(`${file}: short read at ${off + done}`);
        done += n;
      }
    });
  } finally {
    fs.closeSync(fd);
  }
}
