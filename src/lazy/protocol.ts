import { PAGE_SIZE } from "../kernel/sys.js";

/**
 * The lazy-migration protocol between the page server (source) and the lazy-pages daemon
 * (destination). Two TCP connections: "fault" carries page requests and their answers only, so a
 * fault never waits behind bulk data (QEMU's preempt channel); "bulk" carries the background
 * stream the source pushes unasked, and the daemon's acknowledgements.
 *
 * destination -> source                       source -> destination
 *   HELLO    {json}   role, pid, session        HELLO_OK {json}  pages, pid
 *   GET      vaddr, nrPages, id (fault chan)    PAGES    vaddr, nrPages, id, flags
 *            u64: last pushed PAGES id read        payload: zero bitmap (8-byte aligned)
 *   PENDING  ranges (bulk chan): what is                   + data of the non-zero pages
 *            still missing; the source forgets             (IN_FLIGHT reply: no data)
 *            everything else it sent            PONG
 *   DROP     ranges: no longer wanted           BYE      (after DONE: the source is gone)
 *            (munmap, MADV_DONTNEED)
 *   ACK      id: bulk frames up to id are in
 *   DONE     every page is held: kill the source
 *   ABORT    {json} the destination gave up: keep the source frozen
 *   PING
 * All addresses are the source's. Pages are 4 KiB.
 */
export const CMD = {
  HELLO: 1, HELLO_OK: 2, GET: 3, PAGES: 4, PENDING: 5, DROP: 6, ACK: 7, DONE: 8, ABORT: 9,
  PING: 10, PONG: 11, BYE: 12,
} as const;

export const PROTOCOL_VERSION = 2;

/** PAGES flags. */
export const PAGES_FLAG = {
  /** an answer to a GET (fault channel) rather than pushed */
  REPLY: 1,
  /** last frame of a PENDING batch */
  LAST: 2,
  /** a reply in parts: more follow for the same request (the faulting page comes alone, first) */
  MORE: 4,
  /**
   * a reply without data (payload empty): these pages were pushed on the bulk connection and are
   * on their way there; sending them again would only queue a second copy behind the fault
   */
  IN_FLIGHT: 8,
} as const;

/** A GET's payload: u64, the id of the last pushed PAGES frame the destination has read (0: none). */
export const GET_PAYLOAD = 8;

/** Most pages in one PAGES frame: 1 MiB, the top of the 64 KiB–1 MiB chunk range. */
export const MAX_FRAME_PAGES = 256;
/** A range list entry: u64 vaddr, u64 nrPages. */
export const RANGE_SIZE = 16;
/** Ranges per PENDING/DROP frame. */
export const MAX_RANGES_PER_FRAME = 65536;
const MAX_JSON = 64 << 10;

export function bitmapBytes(nrPages: number): number {
  return Math.ceil(nrPages / 64) * 8;
}

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);

/**
 * Make a PAGES payload (the lazy protocol's, and the migrate control connection's) in place: `n`
 * pages read into payload[bitmapBytes(n), ...) become a bitmap of the zero pages (never sent as
 * data) followed by the data of the others. Returns the payload's length.
 */
export function packPages(payload: Buffer, n: number): number {
  const bm = bitmapBytes(n);
  payload.fill(0, 0, bm);
  let out = bm;
  for (let k = 0; k < n; k++) {
    const at = bm + k * PAGE_SIZE;
    if (payload.compare(ZERO_PAGE, 0, PAGE_SIZE, at, at + PAGE_SIZE) === 0) {
      payload[k >> 3] |= 1 << (k & 7);
      continue;
    }
    if (at !== out) payload.copy(payload, out, at, at + PAGE_SIZE);
    out += PAGE_SIZE;
  }
  return out;
}

/**
 * Read a PAGES payload of `n` pages: `offsets[k]` is where page k's data starts (-1: a zero
 * page). Returns the length the payload must have for its bitmap (the caller checks it).
 */
export function pageOffsets(payload: Buffer, n: number, offsets: Int32Array): number {
  let off = bitmapBytes(n);
  for (let k = 0; k < n; k++) {
    const zero = (payload[k >> 3] & (1 << (k & 7))) !== 0;
    offsets[k] = zero ? -1 : off;
    if (!zero) off += PAGE_SIZE;
  }
  return off;
}

/** The largest payload: a PAGES frame of MAX_FRAME_PAGES non-zero pages. */
export const MAX_PAYLOAD = bitmapBytes(MAX_FRAME_PAGES) + MAX_FRAME_PAGES * PAGE_SIZE;

/** Payload limits per command, checked before anything is allocated for a frame. */
export function payloadLimit(cmd: number): number | undefined {
  switch (cmd) {
    case CMD.HELLO: case CMD.HELLO_OK: case CMD.ABORT:
      return MAX_JSON;
    case CMD.PAGES:
      return MAX_PAYLOAD;
    case CMD.PENDING: case CMD.DROP:
      return MAX_RANGES_PER_FRAME * RANGE_SIZE;
    case CMD.GET:
      return GET_PAYLOAD;
    case CMD.ACK: case CMD.DONE: case CMD.PING: case CMD.PONG: case CMD.BYE:
      return 0;
    default:
      return undefined;
  }
}

export interface Hello {
  version: number;
  role: "fault" | "bulk";
  /** the PID the destination restores (the source refuses to serve another process) */
  pid: number;
  /** random per daemon: a reconnect of the same daemon, or a new one */
  session: string;
  /** cap of the background stream, bytes/s (0: none) */
  maxRate: number;
}
export interface HelloOk {
  version: number;
  pid: number;
  pages: number;
}

export interface PageRange {
  vaddr: number;
  nrPages: number;
}

/** Add `nrPages` pages at `vaddr` to a list sorted by address, growing its last range when they touch. */
export function appendRange(ranges: PageRange[], vaddr: number, nrPages: number): void {
  const last = ranges[ranges.length - 1];
  if (last && last.vaddr + last.nrPages * PAGE_SIZE === vaddr) last.nrPages += nrPages;
  else ranges.push({ vaddr, nrPages });
}

export function encodeRanges(ranges: PageRange[]): Buffer {
  const b = Buffer.allocUnsafe(ranges.length * RANGE_SIZE);
  ranges.forEach((r, i) => {
    b.writeBigUInt64LE(BigInt(r.vaddr), i * RANGE_SIZE);
    b.writeBigUInt64LE(BigInt(r.nrPages), i * RANGE_SIZE + 8);
  });
  return b;
}

export function decodeRanges(b: Buffer): PageRange[] {
  const out: PageRange[] = [];
  for (let off = 0; off + RANGE_SIZE <= b.length; off += RANGE_SIZE) {
    out.push({ vaddr: Number(b.readBigUInt64LE(off)), nrPages: Number(b.readBigUInt64LE(off + 8)) });
  }
  return out;
}
