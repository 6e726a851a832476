import fs from "node:fs";
import { FerryError } from "../errors.js";
import { NR, O, sys, rawSyscall, SyscallError } from "../kernel/sys.js";
import type { DumpFdContext, FileKind, RestoreFileContext } from "./kind.js";
import { takeHeldSockets } from "./tcpHolder.js";
import { closeAll } from "./scm.js";
import { setStatusFlags } from "./util.js";
import type { FileObjectImage, SocketImage } from "../images/types.js";
import {
  AF, SO, SOL_SOCKET, SOL_TCP, describeAddr, getsockoptBuf, getsockoptInt, ioctlInt, peekBytes, sendAll,
  setsockoptBuf, setsockoptInt, sockName,
} from "./sockopt.js";

const TCP = { NODELAY: 1, MAXSEG: 2, INFO: 11, REPAIR: 19, REPAIR_QUEUE: 20, QUEUE_SEQ: 21, REPAIR_OPTIONS: 22, TIMESTAMP: 24, REPAIR_WINDOW: 29 } as const;
const RECV_QUEUE = 1, SEND_QUEUE = 2;
const SOL_IP = 0, IP_TRANSPARENT = 19, SOL_IPV6 = 41, IPV6_TRANSPARENT = 75;
const TCPOPT = { MSS: 2, WINDOW: 3, SACK_PERM: 4, TIMESTAMP: 8 } as const;
const TCPI_OPT = { TIMESTAMPS: 1, SACK: 2, WSCALE: 4 } as const;
const STATE = { ESTABLISHED: 1, LISTEN: 10, CLOSE: 7 } as const;
const SIOCINQ = 0x541b, SIOCOUTQ = 0x5411;
const SOCK_STREAM = 1, SOCK_DGRAM = 2;

function where(c: DumpFdContext): string {
  return c.where;
}

/**
 * An established TCP connection, read in repair mode: sequence numbers, both queues, options,
 * window. The socket stays in repair mode, so when the source process dies its close sends
 * neither FIN nor RST; it leaves repair mode again only if the process is let go.
 */
function dumpEstablished(c: DumpFdContext, base: Partial<SocketImage>): Partial<SocketImage> {
  const fd = c.localFd;
  const inq = ioctlInt(fd, SIOCINQ);
  const outq = ioctlInt(fd, SIOCOUTQ);
  const keep = sys("dup", NR.dup, fd);
  c.onDone(() => fs.closeSync(keep));
  try {
    setsockoptInt(fd, SOL_TCP, TCP.REPAIR, 1);
  } catch (e) {
    throw new FerryError("FERRY_TCP_REPAIR", `${where(c)}: cannot put TCP connection ${describeAddr(base.local!)} -> ${describeAddr(base.peer!)} in repair mode (${(e as Error).message}): ferry needs CAP_NET_ADMIN`);
  }
  c.onRelease(() => leaveRepair(keep, !!base.reuseaddr));
  c.holdForRestore(keep);
  const queue = (q: number, len: number) => {
    setsockoptInt(fd, SOL_TCP, TCP.REPAIR_QUEUE, q);
    return { seq: getsockoptInt(fd, SOL_TCP, TCP.QUEUE_SEQ) >>> 0, data: peekBytes(fd, len) };
  };
  const recv = queue(RECV_QUEUE, inq);
  const send = queue(SEND_QUEUE, outq);
  const info = getsockoptBuf(fd, SOL_TCP, TCP.INFO, 104);
  return {
    ...base,
    rcvSeq: recv.seq, recvQueue: recv.data,
    sndSeq: send.seq, sendQueue: send.data,
    tcpiOptions: info[5], sndWscale: info[6] & 0xf, rcvWscale: info[6] >> 4,
    mss: getsockoptInt(fd, SOL_TCP, TCP.MAXSEG),
    timestamp: getsockoptInt(fd, SOL_TCP, TCP.TIMESTAMP) >>> 0,
    window: getsockoptBuf(fd, SOL_TCP, TCP.REPAIR_WINDOW, 20),
    nodelay: getsockoptInt(fd, SOL_TCP, TCP.NODELAY) !== 0,
  };
}

function dumpInet(c: DumpFdContext): Partial<FileObjectImage> {
  const fd = c.localFd;
  const type = getsockoptInt(fd, SOL_SOCKET, SO.TYPE);
  const base: Partial<SocketImage> = {
    family: getsockoptInt(fd, SOL_SOCKET, SO.DOMAIN),
    type,
    protocol: getsockoptInt(fd, SOL_SOCKET, SO.PROTOCOL),
    local: sockName(fd, false),
    peer: sockName(fd, true),
    reuseaddr: getsockoptInt(fd, SOL_SOCKET, SO.REUSEADDR) !== 0,
    keepalive: getsockoptInt(fd, SOL_SOCKET, SO.KEEPALIVE) !== 0,
  };
  if (type === SOCK_DGRAM) return { socket: socketImage({ ...base, state: 0 }) };
  if (type !== SOCK_STREAM) throw new FerryError("FERRY_UNSUPPORTED", `${where(c)}: socket type ${type} is not supported yet`);
  const state = getsockoptBuf(fd, SOL_TCP, TCP.INFO, 104)[0];
  if (state === STATE.LISTEN) return { socket: socketImage({ ...base, state, backlog: 4096 }) };
  if (state === STATE.CLOSE && !base.peer!.length) return { socket: socketImage({ ...base, state }) };
  if (state !== STATE.ESTABLISHED) {
    throw new FerryError("FERRY_UNSUPPORTED", `${where(c)}: TCP socket ${describeAddr(base.local!)} in state ${state} cannot be dumped (only listening and established)`);
  }
  return { socket: socketImage(dumpEstablished(c, { ...base, state })) };
}

export function socketImage(p: Partial<SocketImage>): SocketImage {
  return {
    family: 0, type: 0, protocol: 0, state: 0, local: Buffer.alloc(0), peer: Buffer.alloc(0), backlog: 0,
    sndSeq: 0, rcvSeq: 0, sendQueue: Buffer.alloc(0), recvQueue: Buffer.alloc(0), mss: 0, sndWscale: 0,
    rcvWscale: 0, tcpiOptions: 0, timestamp: 0, window: Buffer.alloc(0), nodelay: false, keepalive: false,
    reuseaddr: false, peerInode: 0, messages: [], shutdownRd: false, shutdownWr: false, inFlight: [],
    ...p,
  };
}

function bindTo(s: number, addr: Buffer, what: string): void {
  if (!addr.length) return;
  const r = rawSyscall(NR.bind, s, addr, addr.length);
  if (r < 0n) throw new FerryError("FERRY_SOCKET", `cannot bind ${what} to ${describeAddr(addr)}: ${new SyscallError("bind", Number(-r)).code}`);
}

/** The connection comes back in repair mode: no handshake, the peer sees the same stream. */
function openEstablished(s: number, k: SocketImage): void {
  setsockoptInt(s, SOL_TCP, TCP.REPAIR, 1);
  setsockoptInt(s, SOL_TCP, TCP.REPAIR_QUEUE, SEND_QUEUE);
  setsockoptInt(s, SOL_TCP, TCP.QUEUE_SEQ, (k.sndSeq - k.sendQueue.length) | 0);
  setsockoptInt(s, SOL_TCP, TCP.REPAIR_QUEUE, RECV_QUEUE);
  setsockoptInt(s, SOL_TCP, TCP.QUEUE_SEQ, (k.rcvSeq - k.recvQueue.length) | 0);
  // The connection's address may reach this host only after the process (a service address
  // moved by an action script once it runs): bind and connect from it even if it is not here
  // yet (transparent: neither bind nor the route lookup of connect insist on a local address).
  const transparent = k.family === AF.INET ? [SOL_IP, IP_TRANSPARENT] : [SOL_IPV6, IPV6_TRANSPARENT];
  setsockoptInt(s, transparent[0], transparent[1], 1);
  bindTo(s, k.local, "TCP connection");
  sys(`connect ${describeAddr(k.peer)}`, NR.connect, s, k.peer, k.peer.length);
  setsockoptInt(s, transparent[0], transparent[1], 0);
  const opts: [number, number][] = [[TCPOPT.MSS, k.mss]];
  if (k.tcpiOptions & TCPI_OPT.WSCALE) opts.push([TCPOPT.WINDOW, k.sndWscale | (k.rcvWscale << 16)]);
  if (k.tcpiOptions & TCPI_OPT.SACK) opts.push([TCPOPT.SACK_PERM, 0]);
  if (k.tcpiOptions & TCPI_OPT.TIMESTAMPS) opts.push([TCPOPT.TIMESTAMP, 0]);
  const b = Buffer.alloc(8 * opts.length);
  opts.forEach(([code, val], i) => {
    b.writeUInt32LE(code, i * 8);
    b.writeUInt32LE(val >>> 0, i * 8 + 4);
  });
  setsockoptBuf(s, SOL_TCP, TCP.REPAIR_OPTIONS, b);
  if (k.tcpiOptions & TCPI_OPT.TIMESTAMPS) setsockoptInt(s, SOL_TCP, TCP.TIMESTAMP, k.timestamp | 0);
  setsockoptInt(s, SOL_TCP, TCP.REPAIR_QUEUE, RECV_QUEUE);
  sendAll(s, k.recvQueue);
  setsockoptInt(s, SOL_TCP, TCP.REPAIR_QUEUE, SEND_QUEUE);
  sendAll(s, k.sendQueue);
  if (k.window.length === 20) setsockoptBuf(s, SOL_TCP, TCP.REPAIR_WINDOW, k.window);
}

/**
 * Leaving repair mode clears SO_REUSEADDR (the kernel forces reuse while in it, then sets no reuse):
 * a socket that had it gets it back, or a restarted server cannot listen on its port again while
 * the connection lingers in TIME_WAIT.
 */
function leaveRepair(s: number, reuseaddr: boolean): void {
  setsockoptInt(s, SOL_TCP, TCP.REPAIR, 0);
  if (reuseaddr) setsockoptInt(s, SOL_SOCKET, SO.REUSEADDR, 1);
}

/**
 * Leave repair mode only once every socket of the tree exists: the first segment a repaired socket
 * sends would otherwise meet no peer (or a listener on its port) and come back as a reset.
 */
function goLive(s: number, k: SocketImage): void {
  leaveRepair(s, k.reuseaddr);
  if (k.nodelay) setsockoptInt(s, SOL_TCP, TCP.NODELAY, 1);
}

/**
 * The connection itself, still in repair mode, when the dump's holder kept it (it has taken in
 * whatever the peer sent since the dump): undefined when there is no holder or it is another
 * connection. The first established socket asks the holder for all of them.
 */
function takeHeld(obj: FileObjectImage, ctx: RestoreFileContext): number | undefined {
  const k = obj.socket!;
  if (k.type !== SOCK_STREAM || k.state !== STATE.ESTABLISHED) return undefined;
  let held = ctx.shared.get("tcp-held") as Map<number, number> | undefined;
  if (!held) {
    const h = held = takeHeldSockets(ctx.images.dir);
    ctx.shared.set("tcp-held", held);
    ctx.cleanup.push(() => closeAll([...h.values()]));
  }
  const fd = held.get(obj.id);
  if (fd === undefined || !sockName(fd, false).equals(k.local) || !sockName(fd, true).equals(k.peer)) return undefined;
  held.delete(obj.id);
  return fd;
}

/** TCP (listening, established, not yet connected) and UDP sockets over IPv4 and IPv6. */
export const inetSocket: FileKind = {
  kind: "inet",
  matches: (c) => c.stat.isSocket() && [AF.INET, AF.INET6].includes(getsockoptInt(c.localFd, SOL_SOCKET, SO.DOMAIN) as 2 | 10),
  dump: dumpInet,
  open(obj, ctx) {
    const k = obj.socket!;
    const held = takeHeld(obj, ctx);
    if (held !== undefined) {
      setStatusFlags(held, obj.flags & O.NONBLOCK);
      ctx.shared.set(`tcp-repair:${obj.id}`, held);
      return held;
    }
    const s = sys("socket", NR.socket, k.family, k.type | O.CLOEXEC, k.protocol);
    try {
      if (k.reuseaddr) setsockoptInt(s, SOL_SOCKET, SO.REUSEADDR, 1);
      if (k.keepalive) setsockoptInt(s, SOL_SOCKET, SO.KEEPALIVE, 1);
      if (k.type === SOCK_STREAM && k.state === STATE.ESTABLISHED) {
        openEstablished(s, k);
        ctx.shared.set(`tcp-repair:${obj.id}`, s);
      } else {
        bindTo(s, k.local, k.type === SOCK_DGRAM ? "UDP socket" : "TCP socket");
        if (k.state === STATE.LISTEN) sys("listen", NR.listen, s, k.backlog);
        if (k.type === SOCK_DGRAM && k.peer.length) sys("connect", NR.connect, s, k.peer, k.peer.length);
      }
      setStatusFlags(s, obj.flags & O.NONBLOCK);
      return s;
    } catch (e) {
      fs.closeSync(s);
      throw e;
    }
  },
  finish(obj, _inj, _fds, ctx) {
    const s = ctx.shared.get(`tcp-repair:${obj.id}`) as number | undefined;
    if (s === undefined) return;
    goLive(s, obj.socket!);
    ctx.shared.delete(`tcp-repair:${obj.id}`);
  },
};
