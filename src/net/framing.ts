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

/** Reads of this many bytes or more go straight to their payload's place (socket onread); smaller ones through the staging buffer. */
const DIRECT_MIN = 4096;
/** Where reads land when they do not go straight into a payload: a few TLS records or TCP segments. */
const STAGING_SIZE = 64 << 10;

/**
 * Reassembles frames from stream chunks. Frames that arrive whole in one chunk are handed over
 * without a copy; the parts of others are gathered in one buffer sized for the largest frame
 * allowed. Fed either with chunks (push: a stream's "data") or, for a socket created with
 * `onread`, through readTarget()/wrote(): a payload that spans reads is then read straight into
 * its place (no chunk allocated per read, no copy to gather it).
 */
export class FrameDecoder {
  private readonly head = Buffer.allocUnsafe(HEADER_SIZE);
  private headFill = 0;
  private header: (FrameHeader & { length: number }) | null = null;
  /** bytes of the current payload gathered in scratch */
  private fill = 0;
  private readonly scratch: Buffer;
  private staging: Buffer | null = null;
  /** the last readTarget() was the current payload's place in scratch */
  private direct = false;

  constructor(
    private readonly limits: PayloadLimits,
    private readonly onFrame: (f: Frame) => void,
    maxPayload: number,
  ) {
    this.scratch = Buffer.allocUnsafe(Math.max(HEADER_SIZE, maxPayload));
  }

  /** Feed bytes; throws FerryError FERRY_PROTOCOL on a malformed stream (drop the connection). */
  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (!this.header) {
        if (!this.headFill && chunk.length - at >= HEADER_SIZE) {
          this.header = this.parseHeader(chunk.subarray(at, at + HEADER_SIZE));
          at += HEADER_SIZE;
        } else {
          const k = chunk.copy(this.head, this.headFill, at, at + HEADER_SIZE - this.headFill);
          this.headFill += k;
          at += k;
          if (this.headFill < HEADER_SIZE) return;
          this.headFill = 0;
          this.header = this.parseHeader(this.head);
        }
        this.fill = 0;
      }
      const need = this.header.length - this.fill;
      if (!this.fill && chunk.length - at >= need) {
        // whole in this chunk: a view, no copy
        const payload = need ? chunk.subarray(at, at + need) : EMPTY;
        at += need;
        this.emit(payload);
        continue;
      }
      const k = chunk.copy(this.scratch, this.fill, at, at + need);
      this.fill += k;
      at += k;
      if (this.fill < this.header.length) return;
      this.emit(this.scratch.subarray(0, this.fill));
    }
  }

  /** onread: where the socket's next read goes (the rest of a large payload, else the staging buffer). */
  readTarget(): Buffer {
    this.direct = this.header !== null && this.header.length - this.fill >= DIRECT_MIN;
    if (this.direct) return this.scratch.subarray(this.fill, this.header!.length);
    return (this.staging ??= Buffer.allocUnsafe(STAGING_SIZE));
  }

  /** onread: `n` bytes were read into the last readTarget(). */
  wrote(n: number): void {
    if (!this.direct) return this.push(this.staging!.subarray(0, n));
    this.fill += n;
    if (this.fill === this.header!.length) this.emit(this.scratch.subarray(0, this.fill));
  }

  /** The frame being read when its payload has partly arrived: its header, and that part. */
  partial(): { header: FrameHeader & { length: number }; payload: Buffer } | null {
    return this.header && this.fill ? { header: this.header, payload: this.scratch.subarray(0, this.fill) } : null;
  }

  private emit(payload: Buffer): void {
    const { length: _, ...h } = this.header!;
    this.header = null;
    this.fill = 0;
    this.onFrame({ ...h, payload });
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
}
