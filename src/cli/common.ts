import fs from "node:fs";
import { InvalidArgumentError } from "commander";
import { FerryError } from "../errors.js";

export function parseIntArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`not a number: ${v}`);
  return n;
}

/** A process ID argument: a positive integer, else FERRY_BAD_PID. */
export function parsePid(v: string): number {
  const pid = Number(v);
  if (!Number.isInteger(pid) || pid <= 0) throw new FerryError("FERRY_BAD_PID", `not a process ID: ${v}`);
  return pid;
}

export function parseSeconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new FerryError("FERRY_USAGE", `not a number of seconds: ${v}`);
  return n;
}

export function parseRate(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new FerryError("FERRY_USAGE", `not a rate in MB/s: ${v}`);
  return n * 1e6;
}

/** Run `work` with a signal that SIGINT or SIGTERM aborts (the handlers are removed when it ends). */
export async function abortOnSignals<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    return await work(abort.signal);
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}

/** CRIU's --status-fd: one byte when ready, then the fd is closed. */
export function signalStatusFd(fd: number): void {
  fs.writeSync(fd, Buffer.from([0]));
  fs.closeSync(fd);
}

/** -D DIR, --images DIR or CRIU's --images-dir DIR. */
export function imagesDir(o: { images?: string; imagesDir?: string }): string {
  const dir = o.images ?? o.imagesDir;
  if (!dir) throw new FerryError("FERRY_USAGE", "where are the images? give -D DIR");
  return dir;
}

/**
 * --phase-fd N: one line per step of a migration, written as the step begins (synchronously, so
 * a caller that reacts to a line meets the step under way). A reader that went away is no error.
 */
export function phaseWriter(fd: number | undefined): (line: string) => void {
  let open = fd !== undefined;
  return (line) => {
    if (!open) return;
    try {
      fs.writeSync(fd!, line + "\n");
    } catch {
      open = false;
    }
  };
}
