import { PAGE_SIZE } from "../kernel/sys.js";
import type { Step } from "../spans.js";

/**
 * The control connection of `ferry migrate` (source) and `ferry agent` (destination). It carries
 * the images (no disk in between), the pages of the pre-copy rounds and the outcome. Pages of a
 * lazy or hybrid switch-over travel on the lazy protocol's own connections (src/lazy/protocol.ts).
 *
 * source -> agent                               agent -> source
 *   HELLO    {json} version, mode, pid            HELLO_OK {json} version
 *   FILE     {json} name, size (begins a file)    RESTORED {json} pid, resumedAtUs, restoreMs
 *   DATA     bytes of the current file            DONE     {json} the lazy summary (or null)
 *   PAGES    vaddr, nrPages: zero bitmap + data   ERROR    {json} message: nothing runs here
 *   RESTORE  {json} page server port, keep ranges
 *   ABORT    {json} reason
 */
export const MCMD = {
  HELLO: 1, HELLO_OK: 2, FILE: 3, DATA: 4, PAGES: 5, RESTORE: 6, ABORT: 7,
  RESTORED: 8, DONE: 9, ERROR: 10,
} as const;

export const MIGRATE_VERSION = 1;
export const MAX_DATA = 1 << 20;
/** Pages in one PAGES frame (1 MiB). */
export const MAX_PAGES = 256;
const MAX_JSON = 16 << 20; // RESTORE carries range lists

export type Mode = "lazy" | "stop-copy" | "precopy" | "hybrid";
export const MODES: readonly Mode[] = ["lazy", "stop-copy", "precopy", "hybrid"];

export function bitmapBytes(nrPages: number): number {
  return Math.ceil(nrPages / 64) * 8;
}

export const MAX_PAYLOAD = Math.max(MAX_JSON, MAX_DATA, bitmapBytes(MAX_PAGES) + MAX_PAGES * PAGE_SIZE);

export function controlLimit(cmd: number): number | undefined {
  switch (cmd) {
    case MCMD.DATA: return MAX_DATA;
    case MCMD.PAGES: return bitmapBytes(MAX_PAGES) + MAX_PAGES * PAGE_SIZE;
    case MCMD.HELLO: case MCMD.HELLO_OK: case MCMD.FILE: case MCMD.RESTORE: case MCMD.ABORT:
    case MCMD.RESTORED: case MCMD.DONE: case MCMD.ERROR:
      return MAX_JSON;
    default: return undefined;
  }
}

export interface Hello { version: number; mode: Mode; pid: number }
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
  installedPages: number;
  /** the agent's steps from RESTORE to the resume, `at` in ms from stepsOriginUs (epoch µs) */
  steps?: Step[];
  stepsOriginUs?: number;
}

export const json = (o: unknown) => Buffer.from(JSON.stringify(o));
export const parse = <T>(b: Buffer): T => JSON.parse(b.toString("utf8")) as T;
