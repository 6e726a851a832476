import { FerryError } from "../errors.js";
import { PAGE_SIZE } from "../kernel/sys.js";
import type { LazySummary } from "../lazy/stats.js";
import { bitmapBytes } from "../lazy/protocol.js";
import type { Step } from "../spans.js";

export { bitmapBytes }; // one PAGES layout for both protocols

/**
 * The control connection of `ferry migrate` (source) and `ferry agent` (destination). It carries
 * the images (no disk in between), the pages of the pre-copy rounds and the outcome. Pages of a
 * lazy or hybrid switch-over travel on the lazy protocol's own connections (src/lazy/protocol.ts).
 *
 * source -> agent                               agent -> source
 *   HELLO    {json} version, mode, pid, codecs    HELLO_OK {json} version, the codec it takes
 *   FILE     {json} name, size (begins a file)    RESTORED {json} pid, resumedAtUs, restoreMs
 *   DATA     bytes of the current file            DONE     {json} the lazy summary (or null)
 *   PAGES    vaddr, nrPages: zero bitmap + data   ERROR    {json} message: nothing runs here
 *   RESTORE  {json} page server port, keep ranges
 *   ABORT    {json} reason
 * both ways: PING (no payload) every second; a side that hears nothing for CONTROL_SILENCE_MS
 * takes the link for dead (a cut link leaves TCP retrying for minutes without a word).
 *
 * RESTORE is the point of no return: once the source has written it, the destination may run the
 * process, and the source lets its frozen copy run again only when the destination says that
 * nothing runs there (ERROR, which the agent sends only then, or a lazy transfer that failed).
 *
 * DATA and PAGES frames with flag 1 (FRAME_COMPRESSED) carry their payload compressed with the
 * codec the agent took in HELLO_OK (compression.ts); the limits apply to the decoded payload.
 */
export const MCMD = {
  HELLO: 1, HELLO_OK: 2, FILE: 3, DATA: 4, PAGES: 5, RESTORE: 6, ABORT: 7,
  RESTORED: 8, DONE: 9, ERROR: 10, PING: 11,
} as const;

export const MIGRATE_VERSION = 3;
/** Nothing heard on the control connection for this long: the link or the other side is gone. */
export const CONTROL_SILENCE_MS = 6000;
export const MAX_DATA = 1 << 20;
/** Pages in one PAGES frame (1 MiB). */
export const MAX_PAGES = 256;
const MAX_JSON = 16 << 20; // RESTORE carries range lists

export type Mode = "lazy" | "stop-copy" | "precopy" | "hybrid";
export const MODES: readonly Mode[] = ["lazy", "stop-copy", "precopy", "hybrid"];

export const MAX_PAYLOAD = Math.max(MAX_JSON, MAX_DATA, bitmapBytes(MAX_PAGES) + MAX_PAGES * PAGE_SIZE);

export function controlLimit(cmd: number): number | undefined {
  switch (cmd) {
    case MCMD.DATA: return MAX_DATA;
    case MCMD.PAGES: return bitmapBytes(MAX_PAGES) + MAX_PAGES * PAGE_SIZE;
    case MCMD.HELLO: case MCMD.HELLO_OK: case MCMD.FILE: case MCMD.RESTORE: case MCMD.ABORT:
    case MCMD.RESTORED: case MCMD.DONE: case MCMD.ERROR:
      return MAX_JSON;
    case MCMD.PING: return 0;
    default: return undefined;
  }
}

export interface Hello {
  version: number; mode: Mode; pid: number;
  /** codecs the source may compress page data with (absent: none) */
  codecs?: string[];
  /** lazy, hybrid: the page server's port, listening already (the agent connects before the freeze) */
  pageServerPort?: number;
}
export interface HelloOk {
  version: number;
  /** the codec the agent decodes, one of the HELLO's (absent: nothing is compressed) */
  codec?: string | null;
}
export interface RestoreRequest {
  /** the lazy page server's port on the source (lazy, hybrid) */
  pageServerPort?: number;
  /** source pages the agent holds from the rounds and may install (neither re-dirtied nor dropped) */
  keep?: [number, number][];
}
export interface RestoredReply {
  pid: number;
  resumedAtUs: number;
  restoreMs: number;
  /** the agent's steps from RESTORE to the resume, `at` in ms from stepsOriginUs (epoch µs) */
  steps?: Step[];
  stepsOriginUs?: number;
}

export const json = (o: unknown) => Buffer.from(JSON.stringify(o));

/*
 * Every JSON payload is checked before use: a malformed one is a FERRY_PROTOCOL error naming
 * what was wrong, never a TypeError deep inside, nor a size or count taken on trust.
 */
function bad(what: string): never {
  throw new FerryError("FERRY_PROTOCOL", `malformed ${what} from the other side`);
}

function parseObject(b: Buffer, what: string): Record<string, unknown> {
  let o: unknown;
  try {
    o = JSON.parse(b.toString("utf8"));
  } catch {
    bad(`${what} (not JSON)`);
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) bad(`${what} (not an object)`);
  return o as Record<string, unknown>;
}

const isInt = (x: unknown, min: number, max = Number.MAX_SAFE_INTEGER): x is number => Number.isSafeInteger(x) && (x as number) >= min && (x as number) <= max;
const isNum = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

export function parseHello(b: Buffer): Hello {
  const o = parseObject(b, "HELLO");
  if (!isInt(o.version, 0)) bad("HELLO (version)");
  if (!MODES.includes(o.mode as Mode)) bad("HELLO (mode)");
  if (!isInt(o.pid, 1, 1 << 22)) bad("HELLO (pid)");
  const hello: Hello = { version: o.version, mode: o.mode as Mode, pid: o.pid };
  if (o.codecs !== undefined) {
    if (!Array.isArray(o.codecs) || o.codecs.length > 16 || !o.codecs.every((c) => typeof c === "string" && c.length <= 64)) bad("HELLO (codecs)");
    hello.codecs = o.codecs as string[];
  }
  if (o.pageServerPort !== undefined) {
    if (!isInt(o.pageServerPort, 1, 65535)) bad("HELLO (pageServerPort)");
    hello.pageServerPort = o.pageServerPort;
  }
  return hello;
}

export function parseHelloOk(b: Buffer): HelloOk {
  const o = parseObject(b, "HELLO_OK");
  if (!isInt(o.version, 0)) bad("HELLO_OK (version)");
  if (o.codec !== undefined && o.codec !== null && (typeof o.codec !== "string" || o.codec.length > 64)) bad("HELLO_OK (codec)");
  return { version: o.version, codec: (o.codec as string | null | undefined) ?? null };
}

/** FILE: a plain name (no path) and a size. */
export function parseFileHeader(b: Buffer): { name: string; size: number } {
  const o = parseObject(b, "FILE");
  if (typeof o.name !== "string" || !/^[\w.-]{1,200}$/.test(o.name) || o.name.startsWith(".")) {
    throw new FerryError("FERRY_PROTOCOL", `refusing image file name ${JSON.stringify(o.name)?.slice(0, 200)}`);
  }
  if (!isInt(o.size, 0)) bad("FILE (size)");
  return { name: o.name, size: o.size };
}

export function parseRestoreRequest(b: Buffer): RestoreRequest {
  const o = parseObject(b, "RESTORE");
  const r: RestoreRequest = {};
  if (o.pageServerPort !== undefined) {
    if (!isInt(o.pageServerPort, 1, 65535)) bad("RESTORE (port)");
    r.pageServerPort = o.pageServerPort;
  }
  if (o.keep !== undefined) {
    if (!Array.isArray(o.keep)) bad("RESTORE (keep)");
    for (const k of o.keep) {
      if (!Array.isArray(k) || k.length !== 2 || !isInt(k[0], 0) || k[0] % PAGE_SIZE || !isInt(k[1], 1, 2 ** 36)) bad("RESTORE (keep range)");
    }
    r.keep = o.keep as [number, number][];
  }
  return r;
}

export function parseRestored(b: Buffer): RestoredReply {
  const o = parseObject(b, "RESTORED");
  if (!isInt(o.pid, 1, 1 << 22) || !isNum(o.resumedAtUs) || !isNum(o.restoreMs)) bad("RESTORED");
  const r: RestoredReply = { pid: o.pid, resumedAtUs: o.resumedAtUs, restoreMs: o.restoreMs };
  if (o.steps !== undefined) {
    const ok = Array.isArray(o.steps) && o.steps.length <= 1000 && isNum(o.stepsOriginUs) &&
      o.steps.every((x) => typeof x === "object" && x !== null && typeof x.name === "string" && x.name.length <= 200 && isNum(x.at) && isNum(x.ms));
    if (!ok) bad("RESTORED (steps)");
    r.steps = (o.steps as Step[]).map((x) => ({ name: x.name, at: x.at, ms: x.ms }));
    r.stepsOriginUs = o.stepsOriginUs as number;
  }
  return r;
}

/** DONE: the agent's lazy summary (null without a lazy transfer), as far as the source reads it. */
export function parseDone(b: Buffer): LazySummary | null {
  if (b.toString("utf8").trim() === "null") return null;
  const o = parseObject(b, "DONE");
  if (!["complete", "process-exited", "failed"].includes(o.outcome as string)) bad("DONE (outcome)");
  for (const k of ["faults", "pages", "pagesByFault", "pagesPushed"]) if (o[k] !== undefined && !isNum(o[k])) bad(`DONE (${k})`);
  if (o.error !== undefined && typeof o.error !== "string") bad("DONE (error)");
  return o as unknown as LazySummary;
}

/** The text of an ERROR or ABORT frame (at most 500 characters). */
export function parseMessage(b: Buffer, key: "message" | "reason"): string {
  const o = parseObject(b, key === "message" ? "ERROR" : "ABORT");
  return typeof o[key] === "string" ? (o[key] as string).slice(0, 500) : `no ${key} given`;
}
