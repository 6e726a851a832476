import { FerryError } from "../errors.js";

/**
 * ferry's frames: a fixed 32-byte header (like CRIU's page-server request: command, page count,
 * address, id) and a payload whose length the header states. A length is checked against the
 * command's limit before a single byte is allocated for it.
 *
 *   0  u16 cmd      2  u16 flags     4  u32 nrPages
 *   8  u64 vaddr   16  u64 id       24  u32 payload length    28  u32 magic "FRY1"
 */
export const HEADER_SIZE = 32;
const MAGIC = 0x31595246; // "FRY1" little endian
const EMPTY = Buffer.alloc(0);

export interface FrameHeader {
  cmd: number;
  flags: number;
  nrPages: number;
  vaddr: number;
  id: number;
}
export interface Frame extends FrameHeader {
  /** Valid only during the onFrame callback: the decoder reuses its memory. */
  payload: Buffer;
}

export function encodeHeader(h: FrameHeader, payloadLength: number, into: Buffer = Buffer.allocUnsafe(HEADER_SIZE)): Buffer {
  into.writeUInt16LE(h.cmd, 0);
  into.writeUInt16LE(h.flags, 2);
  into.writeUInt32LE(h.nrPages, 4);
  into.writeBigUInt64LE(BigInt(h.vaddr), 8);
  into.writeBigUInt64LE(BigInt(h.id), 16);
  into.writeUInt32LE(payloadLength, 24);
  into.writeUInt32LE(MAGIC, 28);
  return into;
}

/** One frame as a single Buffer (header + payload), for small frames. */
export function encodeFrame(h: FrameHeader, payload?: Buffer): Buffer {
  const len = payload?.length ?? 0;
  const b = Buffer.allocUnsafe(HEADER_SIZE + len);
  encodeHeader(h, len, b);
  payload?.copy(b, HEADER_SIZE);
  return b;
}

/** Largest payload each command may carry; commands not listed are refused. */
export type PayloadLimits = (cmd: number) => number | undefined;

/**
 * Reassembles frames from stream chunks. Frames that arrive whole in one chunk are handed over
 * without a copy; others are gathered in one buffer sized for the largest frame allowed.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header: (FrameHeader & { length: number }) | null = null;
  private need = HEADER_SIZE;
  private scratch: Buffer;

  constructor(
    private readonly limits: PayloadLimits,
    private readonly onFrame: (f: Frame) => void,
    maxPayload: number,
  ) {
    this.scratch = Buffer.allocUnsafe(Math.max(HEADER_SIZE, maxPayload));
  }

  /** Feed bytes; throws FerryError FERRY_PROTOCOL on a malformed stream (drop the connection). */
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (!this.header) {
        if (this.buffered < HEADER_SIZE) return;
        const h = this.parseHeader(this.take(HEADER_SIZE));
        this.header = h;
        this.need = h.length;
      }
      if (this.buffered < this.need) return;
      const payload = this.need ? this.take(this.need) : EMPTY;
      const { length: _, ...h } = this.header;
      this.header = null;
      this.need = HEADER_SIZE;
      this.onFrame({ ...h, payload });
    }
  }

  private parseHeader(b: Buffer): FrameHeader & { length: number } {
    if (b.readUInt32LE(28) !== MAGIC) {
      throw new FerryError("FERRY_PROTOCOL", "the peer does not speak ferry's protocol (bad frame magic)");
    }
    const cmd = b.readUInt16LE(0);
    const len = b.readUInt32LE(24);
    const max = this.limits(cmd);
    if (max === undefined) throw new FerryError("FERRY_PROTOCOL", `unexpected command ${cmd} from the peer`);
    if (len > max || len > this.scratch.length) {
      throw new FerryError("FERRY_PROTOCOL", `frame of command ${cmd} claims ${len} bytes (at most ${max} allowed)`);
    }
    const vaddr = b.readBigUInt64LE(8);
    const id = b.readBigUInt64LE(16);
    if (vaddr > BigInt(Number.MAX_SAFE_INTEGER) || id > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FerryError("FERRY_PROTOCOL", `frame of command ${cmd} carries an out-of-range address or id`);
    }
    return { cmd, flags: b.readUInt16LE(2), nrPages: b.readUInt32LE(4), vaddr: Number(vaddr), id: Number(id), length: len };
  }

  /** The next `n` buffered bytes: a view into one chunk when possible, else copied together. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return out;
    }
    const out = n <= this.scratch.length ? this.scratch.subarray(0, n) : Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}
