import fs from "node:fs";
import { FerryError } from "../errors.js";
import { O } from "../kernel/sys.js";
import type { FileKind } from "./kind.js";

/** Character devices (/dev/null, /dev/zero, /dev/urandom, a tty): reopened by path. */
export const charDevice: FileKind = {
  kind: "chr",
  matches: (c) => c.stat.isCharacterDevice(),
  dump: (c) => ({ path: c.link, rdev: c.stat.rdev, mode: c.stat.mode }),
  open(obj) {
    try {
      const fd = fs.openSync(obj.path, obj.flags & ~(O.CREAT | O.EXCL | O.TRUNC));
      return fd;
    } catch (e) {
      throw new FerryError("FERRY_FILE", `cannot reopen device ${obj.path}: ${(e as NodeJS.ErrnoException).code}`);
    }
  },
};
