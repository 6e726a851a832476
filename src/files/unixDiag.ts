import fs from "node:fs";
import { FerryError } from "../errors.js";
import { NR, O, sys, rawSyscall } from "../kernel/sys.js";

/** What the kernel's sock_diag tells of one unix socket that its fd does not. */
export interface UnixDiag {
  type: number;
  state: number;      // TCP_ESTABLISHED 1, TCP_CLOSE 7, TCP_LISTEN 10
  peerInode: number;  // 0: no peer
  name: string;
  rqueue: number;     // bytes (stream) or messages (listen: pending connections)
}

const AF_NETLINK = 16, NETLINK_SOCK_DIAG = 4, SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1, NLMSG_ERROR = 2;
const UDIAG_SHOW = { NAME: 1, PEER: 4, RQLEN: 16 } as const;
const UNIX_DIAG = { NAME: 0, PEER: 2, RQLEN: 4 } as const;

/** Ask sock_diag about the unix socket with this inode. */
export function unixDiag(inode: number): UnixDiag {
  const nl = sys("socket(AF_NETLINK)", NR.socket, AF_NETLINK, 2 /* SOCK_DGRAM */ | O.CLOEXEC, NETLINK_SOCK_DIAG);
  try {
    const req = Buffer.alloc(16 + 24);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST, 6);
    req.writeUInt32LE(1, 8);
    req.writeUInt8(1 /* AF_UNIX */, 16);
    req.writeUInt32LE(0xffffffff, 20); // every state
    req.writeUInt32LE(inode, 24);
    req.writeUInt32LE(UDIAG_SHOW.NAME | UDIAG_SHOW.PEER | UDIAG_SHOW.RQLEN, 28);
    req.writeUInt32LE(0xffffffff, 32); // no cookie: look up by inode
    req.writeUInt32LE(0xffffffff, 36);
    const kernel = Buffer.alloc(12);
    kernel.writeUInt16LE(AF_NETLINK, 0);
    sys("sendto(sock_diag)", NR.sendto, nl, req, req.length, 0, kernel, kernel.length);
    const buf = Buffer.alloc(8192);
    const n = Number(rawSyscall(NR.recvfrom, nl, buf, buf.length, 0, 0, 0));
    if (n < 16) throw new FerryError("FERRY_SOCK_DIAG", `sock_diag gave no answer for unix socket ${inode}`);
    if (buf.readUInt16LE(4) === NLMSG_ERROR) {
      throw new FerryError("FERRY_SOCK_DIAG", `sock_diag does not know unix socket ${inode} (errno ${-buf.readInt32LE(16)})`);
    }
    const msgLen = Math.min(buf.readUInt32LE(0), n);
    const out: UnixDiag = { type: buf[17], state: buf[18], peerInode: 0, name: "", rqueue: 0 };
    for (let off = 16 + 16; off + 4 <= msgLen; ) {
      const len = buf.readUInt16LE(off), kind = buf.readUInt16LE(off + 2);
      if (len < 4) break;
      const payload = buf.subarray(off + 4, off + len);
      if (kind === UNIX_DIAG.NAME) out.name = payload[0] === 0 ? "@" + payload.subarray(1).toString() : payload.toString();
      else if (kind === UNIX_DIAG.PEER) out.peerInode = payload.readUInt32LE(0);
      else if (kind === UNIX_DIAG.RQLEN) out.rqueue = payload.readUInt32LE(0);
      off += (len + 3) & ~3;
    }
    return out;
  } finally {
    fs.closeSync(nl);
  }
}
