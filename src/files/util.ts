import fs from "node:fs";
import { F, NR, O, sys } from "../kernel/sys.js";

/**
 * Give an object created inside ferry the status flags the dumped one had (O_NONBLOCK, O_APPEND,
 * O_ASYNC...). F_SETFL ignores the access mode and creation flags, so the dumped value goes as is.
 */
export function setStatusFlags(fd: number, flags: number): void {
  sys("fcntl(F_SETFL)", NR.fcntl, fd, F.SETFL, flags & ~O.ACCMODE);
}

/** The same for a freshly made fd, which is closed (not leaked) when it fails. */
export function withStatusFlags(fd: number, flags: number): number {
  try {
    setStatusFlags(fd, flags);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  return fd;
}
