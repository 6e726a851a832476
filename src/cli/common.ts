import fs from "node:fs";
import { InvalidArgumentError } from "commander";

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
