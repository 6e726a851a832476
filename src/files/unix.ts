import fs from "node:fs";
import { FerryError } from "../errors.js";
import { NR, O, sys, rawSyscall, SyscallError } from "../kernel/sys.js";
import type { DumpFdContext, FileKind, RestoreFileContext } from "./kind.js";
import type { FileObjectImage } from "../images/types.js";
import { socketImage } from "./inet.js";
import { unixDiag } from "./unixDiag.js";
import { AF, SO, SOL_SOCKET, describeAddr, getsockoptInt, ioctlInt, sendAll, setsockoptInt, sockName } from "./sockopt.js";
import { native } from "../kernel/native.js";

const SOCK_STREAM = 1;
const STATE = { ESTABLISHED: 1, CLOSE: 7, LISTEN: 10 } as const;
const SIOCINQ = 0x541b, F_SETFL = 4;

/**
 * Peek at what waits in a unix socket (MSG_PEEK) with room for ancillary data: file descriptors
 * in flight (SCM_RIGHTS) cannot be carried yet and must not be dropped silently. The kernel hands
 * ferry copies of them on a peek; they are closed at once.
 */
function peekUnix(c: DumpFdContext, max: number): Buffer {
  const MSG_PEEK = 2, MSG_DONTWAIT = 0x40, SCM_RIGHTS = 1;
  const data = Buffer.alloc(Math.max(1, max));
  const control = Buffer.alloc(4096);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(native.addressOf(data), 0);
  iov.writeBigUInt64LE(BigInt(max), 8);
  const msg = Buffer.alloc(56);
  msg.writeBigUInt64LE(native.addressOf(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  msg.writeBigUInt64LE(native.addressOf(control), 32);
  msg.writeBigUInt64LE(BigInt(control.length), 40);
  const r = rawSyscall(NR.recvmsg, c.localFd, msg, MSG_PEEK | MSG_DONTWAIT);
  if (r === -11n) return Buffer.alloc(0);
  if (r < 0n) throw new SyscallError("recvmsg(MSG_PEEK)", Number(-r));
  const controlLen = Number(msg.readBigUInt64LE(40));
  for (let off = 0; off + 16 <= controlLen; ) {
    const len = Number(control.readBigUInt64LE(off));
    if (len < 16) break;
    if (control.readInt32LE(off + 8) === SOL_SOCKET && control.readInt32LE(off + 12) === SCM_RIGHTS) {
      for (let i = off + 16; i + 4 <= off + len; i += 4) fs.closeSync(control.readInt32LE(i));
      throw new FerryError("FERRY_UNSUPPORTED", `pid ${c.pid} fd ${c.fd}: unix socket ${describeAddr(sockName(c.localFd, false))} has file descriptors in flight (SCM_RIGHTS): not supported yet`);
    }
    off += (len + 7) & ~7;
  }
  return Buffer.from(data.subarray(0, Number(r)));
}

/** Datagrams and seqpackets waiting, in order, read with MSG_PEEK at a moving peek offset. */
function peekMessages(c: DumpFdContext): Buffer[] {
  const fd = c.localFd;
  const out: Buffer[] = [];
  setsockoptInt(fd, SOL_SOCKET, SO.PEEK_OFF, 0);
  try {
    for (let i = 0; i < 100_000; i++) {
      const msg = peekUnix(c, 1 << 17);
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
    ? { recvQueue: peekUnix(c, ioctlInt(fd, SIOCINQ)) }
    : { messages: peekMessages(c) };
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
