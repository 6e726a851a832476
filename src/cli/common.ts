import fs from "node:fs";
import { InvalidArgumentError } from "commander";
import { FerryError } from "../errors.js";

export function parseIntArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`not a number: ${v}`);
  return n;
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
