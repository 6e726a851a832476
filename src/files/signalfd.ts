import { NR, O, sys } from "../kernel/sys.js";
import { FerryError } from "../errors.js";
import { u64le } from "../images/types.js";
import type { FileKind } from "./kind.js";
import { withStatusFlags } from "./util.js";

/**
 * signalfd: only its mask is state (fdinfo `sigmask:`, hex, bit N-1 for signal N). The signals it
 * would read are the process's pending signals, restored with the process. A signalfd created by
 * ferry works in the target since it reads the signals of whichever task reads it.
 */
export const signalfd: FileKind = {
  kind: "signalfd",
  matches: (c) => c.link === "anon_inode:[signalfd]",
  dump(c) {
    const hex = c.fdinfo.sigmask;
    if (hex === undefined || !/^[0-9a-f]+$/i.test(hex)) {
      throw new FerryError("FERRY_DUMP_FILE", `${c.where}: fdinfo of the signalfd has no readable sigmask (${hex})`);
    }
    return { sigmask: u64le(BigInt(`0x${hex}`)) };
  },
  open(obj) {
    if (obj.sigmask.length !== 8) throw new FerryError("FERRY_IMAGE_CORRUPT", `files.img: signalfd ${obj.id} has a ${obj.sigmask.length}-byte mask, expected 8`);
    const fd = sys("signalfd4", NR.signalfd4, -1, obj.sigmask, 8, O.CLOEXEC);
    return withStatusFlags(fd, obj.flags);
  },
};
