import fs from "node:fs";
import { FerryError } from "../errors.js";
import { NR, O, sys, rawSyscall, SyscallError } from "../kernel/sys.js";
import type { DumpFdContext, FileKind, RestoreFileContext } from "./kind.js";
import type { FileObjectImage, FilesInFlightImage } from "../images/types.js";
import { socketImage } from "./inet.js";
import { unixDiag } from "./unixDiag.js";
import { AF, SO, SOL_SOCKET, describeAddr, getsockoptInt, ioctlInt, sendAll, setsockoptInt, sockName } from "./sockopt.js";
import { closeAll, MSG, recvWithFds, sendWithFds } from "./scm.js";
import { setStatusFlags } from "./util.js";

const SOCK_STREAM = 1;
const STATE = { ESTABLISHED: 1, CLOSE: 7, LISTEN: 10 } as const;
const SIOCINQ = 0x541b;
/** the largest datagram or seqpacket carried */
const MAX_MESSAGE = 1 << 17;

interface Queue {
  recvQueue?: Buffer;
  messages?: Buffer[];
  inFlight: FilesInFlightImage[];
}

/**
 * The fds a queued message carries (ferry got copies of them from the peek), dumped as files in
 * flight; their ids, in order. The table owns each fd once handed over; the rest are closed if one fails.
 */
function filesInFlight(c: DumpFdContext, fds: number[], message: number): number[] {
  const name = describeAddr(sockName(c.localFd, false));
  const ids: number[] = [];
  for (let i = 0; i < fds.length; i++) {
    try {
      ids.push(c.dumpInFlight(fds[i], `${c.where} (unix socket ${name}), message ${message + 1} of its queue, fd ${i + 1} of ${fds.length} in flight`));
    } catch (e) {
      closeAll(fds.slice(i + 1));
      throw e;
    }
  }
  return ids;
}

/** Datagrams and seqpackets waiting, in order, with their fds: MSG_PEEK at a moving peek offset. */
function peekMessages(c: DumpFdContext): Queue {
  const fd = c.localFd;
  const q: Queue = { messages: [], inFlight: [] };
  setsockoptInt(fd, SOL_SOCKET, SO.PEEK_OFF, 0);
  try {
    for (let m; (m = recvWithFds(fd, MAX_MESSAGE, MSG.PEEK | MSG.DONTWAIT)); ) {
      if (m.flags & MSG.TRUNC) {
        closeAll(m.fds);
        throw new FerryError("FERRY_UNSUPPORTED", `${c.where}: a message of more than ${MAX_MESSAGE} bytes waits in unix socket ${describeAddr(sockName(fd, false))}: not supported`);
      }
      if (m.fds.length) q.inFlight.push({ message: q.messages!.length, fileIds: filesInFlight(c, m.fds, q.messages!.length) });
      q.messages!.push(m.data);
    }
  } finally {
    setsockoptInt(fd, SOL_SOCKET, SO.PEEK_OFF, -1);
  }
  return q;
}

/**
 * A stream's bytes with the fds riding in it. A peek goes on through the queue's segments and
 * stops after the first one that carries fds, so those belong to the segment that ends where the
 * peek ended. Where that segment starts no peek can tell (a peek anywhere before it already looks
 * ahead and hands over its fds), so the fds are put back on the segment's last byte: a read that
 * reaches the end of what they were sent with gets them, as before; only a read that stops inside
 * that segment gets them one read later than it would have.
 */
function peekStream(c: DumpFdContext): Queue {
  const fd = c.localFd;
  const total = ioctlInt(fd, SIOCINQ);
  const pieces: Buffer[] = [];
  const inFlight: FilesInFlightImage[] = [];
  try {
    for (let off = 0; off < total; ) {
      setsockoptInt(fd, SOL_SOCKET, SO.PEEK_OFF, off);
      const m = recvWithFds(fd, total - off, MSG.PEEK | MSG.DONTWAIT);
      if (!m || !m.data.length) {
        if (m) closeAll(m.fds);
        break;
      }
      off += m.data.length;
      if (!m.fds.length) {
        pieces.push(m.data);
        continue;
      }
      if (m.data.length > 1) pieces.push(m.data.subarray(0, -1));
      inFlight.push({ message: pieces.length, fileIds: filesInFlight(c, m.fds, pieces.length) });
      pieces.push(m.data.subarray(-1));
    }
  } finally {
    setsockoptInt(fd, SOL_SOCKET, SO.PEEK_OFF, -1);
  }
  return inFlight.length ? { messages: pieces, inFlight } : { recvQueue: Buffer.concat(pieces), inFlight };
}

function dumpUnix(c: DumpFdContext): Partial<FileObjectImage> {
  const fd = c.localFd;
  const diag = unixDiag(c.stat.ino);
  const type = getsockoptInt(fd, SOL_SOCKET, SO.TYPE);
  const local = sockName(fd, false);
  const base = { family: AF.UNIX, type, protocol: 0, state: diag.state, local, peer: sockName(fd, true), peerInode: diag.peerInode };
  if (diag.state === STATE.LISTEN) return { inode: c.stat.ino, socket: socketImage({ ...base, backlog: 4096 }) };
  // A connected socket's other end must be in the dump too: the restore checks it (files.img).
  const queued = type === SOCK_STREAM ? peekStream(c) : peekMessages(c);
  return { inode: c.stat.ino, socket: socketImage({ ...base, ...queued }) };
}

/** ferry's fds of the files in flight a message carries (opened before their carrier). */
function openedInFlight(ids: number[], ctx: RestoreFileContext): number[] {
  return ids.map((id) => {
    const fd = ctx.opened.get(id);
    if (fd === undefined) throw new FerryError("FERRY_IMAGE_CORRUPT", `files.img: file ${id} in flight comes after the socket that carries it`);
    return fd;
  });
}

/** One queued message again, with its fds; a stream piece may go out in several sends (fds on the first). */
function sendQueued(fd: number, data: Buffer, fds: number[], stream: boolean): void {
  const r = sendWithFds(fd, data, fds);
  if (r < 0n) throw new SyscallError(fds.length ? "sendmsg(SCM_RIGHTS)" : "sendmsg", Number(-r));
  if (stream && Number(r) < data.length) sendAll(fd, data.subarray(Number(r)));
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
  const inFlight = new Map(k.inFlight.map((f) => [f.message, f.fileIds]));
  k.messages.forEach((m, i) => sendQueued(other, m, openedInFlight(inFlight.get(i) ?? [], ctx), k.type === SOCK_STREAM));
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
    setStatusFlags(s, obj.flags & O.NONBLOCK);
    return s;
  },
};
