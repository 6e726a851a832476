import fs from "node:fs";
import { FerryError } from "../errors.js";
import { NR, O, sys, rawSyscall, SyscallError } from "../kernel/sys.js";
import type { DumpFdContext, FileKind, RestoreFileContext } from "./kind.js";
import type { FileObjectImage } from "../images/types.js";
import { socketImage } from "./inet.js";
import { unixDiag } from "./unixDiag.js";
import { AF, SO, SOL_SOCKET, describeAddr, getsockoptInt, ioctlInt, peekBytes, sendAll, setsockoptInt, sockName } from "./sockopt.js";

const SOCK_STREAM = 1;
const STATE = { ESTABLISHED: 1, CLOSE: 7, LISTEN: 10 } as const;
const SIOCINQ = 0x541b, F_SETFL = 4;

/** Datagrams and seqpackets waiting, in order, read with MSG_PEEK at a moving peek offset. */
function peekMessages(fd: number): Buffer[] {
  const out: Buffer[] = [];
  setsockoptInt(fd, SOL_SOCKET, SO.PEEK_OFF, 0);
  try {
    for (let i = 0; i < 100_000; i++) {
      const msg = peekBytes(fd, 1 << 17);
      if (!msg.length) {
        // an empty datagram is a message too; EAGAIN is the end
        const r = rawSyscall(NR.recvfrom, fd, Buffer.alloc(1), 1, 2 /* MSG_PEEK */ | 0x40 | 0x20 /* MSG_TRUNC */, 0, 0);
        if (r < 0n) break;
      }
      out.push(msg);
    }
  } finally {
    setsockoptInt(fd, SOL_SOCKET, SO.PEEK_OFF, -1);
  }
  return out;
}

function dumpUnix(c: DumpFdContext): Partial<FileObjectImage> {
  const fd = c.localFd;
  const diag = unixDiag(c.stat.ino);
  const type = getsockoptInt(fd, SOL_SOCKET, SO.TYPE);
  const local = sockName(fd, false);
  const base = { family: AF.UNIX, type, protocol: 0, state: diag.state, local, peer: sockName(fd, true), peerInode: diag.peerInode };
  if (diag.state === STATE.LISTEN) return { inode: c.stat.ino, socket: socketImage({ ...base, backlog: 4096 }) };
  // A connected socket's other end must be in the dump too: the restore checks it (files.img).
  const queued = type === SOCK_STREAM
    ? { recvQueue: peekBytes(fd, ioctlInt(fd, SIOCINQ)) }
    : { messages: peekMessages(fd) };
  return { inode: c.stat.ino, socket: socketImage({ ...base, ...queued }) };
}

interface Pair { ends: Map<number, number> }

/**
 * Both ends of a connected pair come from one socketpair(); what waited in one end's queue is
 * sent again through the other end.
 */
function openConnected(obj: FileObjectImage, ctx: RestoreFileContext): number {
  const k = obj.socket!;
  const key = `unix-pair:${Math.min(obj.inode, k.peerInode)}:${Math.max(obj.inode, k.peerInode)}`;
  let pair = ctx.shared.get(key) as Pair | undefined;
  if (!pair) {
    const fds = new Int32Array(2);
    sys("socketpair", NR.socketpair, AF.UNIX, k.type | O.CLOEXEC, 0, fds);
    pair = { ends: new Map([[obj.inode, fds[0]], [k.peerInode, fds[1]]]) };
    const p = pair;
    ctx.shared.set(key, pair);
    ctx.cleanup.push(() => p.ends.forEach((fd) => fs.closeSync(fd)));
  }
  const mine = pair.ends.get(obj.inode)!;
  const other = pair.ends.get(k.peerInode)!;
  if (k.recvQueue.length) sendAll(other, k.recvQueue);
  for (const m of k.messages) sys("send", NR.sendto, other, m, m.length, 0, 0, 0);
  return sys("dup", NR.dup, mine);
}

function bindUnix(s: number, addr: Buffer): void {
  const name = describeAddr(addr);
  if (!name.startsWith("@") && name !== "(unnamed)") {
    // The dead process's socket file is still there: a new bind needs the name free.
    try {
      if (fs.lstatSync(name).isSocket()) fs.unlinkSync(name);
    } catch { /* not there */ }
  }
  const r = rawSyscall(NR.bind, s, addr, addr.length);
  if (r < 0n) throw new FerryError("FERRY_SOCKET", `cannot bind unix socket to ${name}: ${new SyscallError("bind", Number(-r)).code}`);
}

/** Unix sockets: connected pairs inside the dumped tree, listening and bound sockets by name. */
export const unixSocket: FileKind = {
  kind: "unix",
  matches: (c) => c.stat.isSocket() && getsockoptInt(c.localFd, SOL_SOCKET, SO.DOMAIN) === AF.UNIX,
  dump: dumpUnix,
  open(obj, ctx) {
    const k = obj.socket!;
    let s: number;
    if (k.peerInode) {
      if (!ctx.files.some((f) => f.kind === "unix" && f.inode === k.peerInode)) {
        throw new FerryError("FERRY_UNSUPPORTED", `unix socket ${describeAddr(k.local)} is connected to a process outside the dump (peer socket ${k.peerInode})`);
      }
      s = openConnected(obj, ctx);
    } else {
      s = sys("socket(AF_UNIX)", NR.socket, AF.UNIX, k.type | O.CLOEXEC, 0);
      if (k.local.length > 2) bindUnix(s, k.local);
      if (k.state === STATE.LISTEN) sys("listen", NR.listen, s, k.backlog);
    }
    sys("fcntl(F_SETFL)", NR.fcntl, s, F_SETFL, obj.flags & O.NONBLOCK);
    return s;
  },
};
