import fs from "node:fs";
import { NR, O, sys } from "../kernel/sys.js";
import { FerryError } from "../errors.js";
import { readU64le, u64le } from "../images/types.js";
import type { FileKind } from "./kind.js";
import { setStatusFlags } from "./util.js";

const EFD_SEMAPHORE = 1;

/**
 * eventfd: its counter and semaphore mode come from fdinfo (`eventfd-count` is hex, and
 * `eventfd-semaphore` exists since Linux 6.6; older kernels cannot tell, we assume a plain counter).
 * The counter is a u64 (up to 2^64 - 2): `counter` holds it, and `data` again as 8 bytes LE, which
 * the restore reads, since the image reader decodes 64-bit fields as JS numbers.
 * Not restored: the eventfd-id (a kernel-wide number nothing can choose).
 */
export const eventfd: FileKind = {
  kind: "eventfd",
  matches: (c) => c.link === "anon_inode:[eventfd]",
  dump(c) {
    const hex = c.fdinfo["eventfd-count"];
    if (hex === undefined) throw new FerryError("FERRY_DUMP_FILE", `${c.where}: fdinfo of the eventfd has no eventfd-count`);
    const count = BigInt(`0x${hex}`);
    return { counter: Number(count), data: u64le(count), semaphore: c.fdinfo["eventfd-semaphore"] === "1" };
  },
  open(obj) {
    // eventfd2 takes a 32-bit initial value: start at 0 and write the full 64-bit count.
    const fd = sys("eventfd2", NR.eventfd2, 0, O.CLOEXEC | (obj.semaphore ? EFD_SEMAPHORE : 0));
    try {
      const count = obj.data.length === 8 ? readU64le(obj.data) : BigInt(obj.counter);
      if (count > 0n) fs.writeSync(fd, u64le(count));
      setStatusFlags(fd, obj.flags);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return fd;
  },
};
