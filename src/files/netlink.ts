import fs from "node:fs";
import { FerryError } from "../errors.js";
import { NR, O, sys, rawSyscall, SyscallError } from "../kernel/sys.js";
import type { FileKind } from "./kind.js";
import { socketImage } from "./inet.js";
import { AF, SO, SOL_SOCKET, getsockoptInt, sockName } from "./sockopt.js";
import { setStatusFlags } from "./util.js";


/**
 * Netlink sockets, the simple way: a new socket of the same protocol, bound to the same port id
 * and multicast groups. Messages queued and not read yet are not carried over.
 */
export const netlinkSocket: FileKind = {
  kind: "netlink",
  matches: (c) => c.stat.isSocket() && getsockoptInt(c.localFd, SOL_SOCKET, SO.DOMAIN) === AF.NETLINK,
  dump: (c) => ({
    socket: socketImage({
      family: AF.NETLINK,
      type: getsockoptInt(c.localFd, SOL_SOCKET, SO.TYPE),
      protocol: getsockoptInt(c.localFd, SOL_SOCKET, SO.PROTOCOL),
      local: sockName(c.localFd, false),
    }),
  }),
  open(obj) {
    const k = obj.socket!;
    const s = sys("socket(AF_NETLINK)", NR.socket, AF.NETLINK, k.type | O.CLOEXEC, k.protocol);
    try {
      // sockaddr_nl: family, pad, port id, groups; port id 0 was never bound: leave it so.
      if (k.local.length >= 12 && (k.local.readUInt32LE(4) || k.local.readUInt32LE(8))) {
        const r = rawSyscall(NR.bind, s, k.local, k.local.length);
        if (r < 0n) {
          throw new FerryError("FERRY_SOCKET", `cannot bind netlink socket to port ${k.local.readUInt32LE(4)}: ${new SyscallError("bind", Number(-r)).code}`);
        }
      }
      setStatusFlags(s, obj.flags & O.NONBLOCK);
      return s;
    } catch (e) {
      fs.closeSync(s);
      throw e;
    }
  },
};
