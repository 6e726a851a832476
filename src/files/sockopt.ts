import { NR, sys, rawSyscall, SyscallError } from "../kernel/sys.js";

export const SOL_SOCKET = 1;
export const SOL_TCP = 6;
export const SO = { REUSEADDR: 2, TYPE: 3, SNDBUF: 7, RCVBUF: 8, KEEPALIVE: 9, PEEK_OFF: 42, PROTOCOL: 38, DOMAIN: 39, ACCEPTCONN: 30 } as const;
export const AF = { UNIX: 1, INET: 2, INET6: 10, NETLINK: 16 } as const;

export function getsockoptInt(fd: number, level: number, opt: number): number {
  const v = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4);
  sys(`getsockopt(${level}, ${opt})`, NR.getsockopt, fd, level, opt, v, len);
  return v.readInt32LE(0);
}

export function getsockoptBuf(fd: number, level: number, opt: number, size: number): Buffer {
  const v = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size);
  sys(`getsockopt(${level}, ${opt})`, NR.getsockopt, fd, level, opt, v, len);
  return v.subarray(0, len.readUInt32LE(0));
}

export function setsockoptInt(fd: number, level: number, opt: number, value: number): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value);
  sys(`setsockopt(${level}, ${opt})`, NR.setsockopt, fd, level, opt, v, 4);
}

export function setsockoptBuf(fd: number, level: number, opt: number, value: Buffer): void {
  sys(`setsockopt(${level}, ${opt})`, NR.setsockopt, fd, level, opt, value, value.length);
}

/** getsockname / getpeername: the raw sockaddr (empty when there is none). */
export function sockName(fd: number, peer: boolean): Buffer {
  const addr = Buffer.alloc(128);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(128);
  const r = rawSyscall(peer ? NR.getpeername : NR.getsockname, fd, addr, len);
  if (r === -107n) return Buffer.alloc(0); // ENOTCONN
  if (r < 0n) throw new SyscallError(peer ? "getpeername" : "getsockname", Number(-r));
  return Buffer.from(addr.subarray(0, len.readUInt32LE(0)));
}

/** "127.0.0.1:6379", "[::1]:80", "/run/x.sock", "@abstract" for messages. */
export function describeAddr(a: Buffer): string {
  if (a.length < 2) return "(none)";
  const family = a.readUInt16LE(0);
  if (family === AF.INET) return `${[...a.subarray(4, 8)].join(".")}:${a.readUInt16BE(2)}`;
  if (family === AF.INET6) return `[${a.subarray(8, 24).toString("hex").replace(/(.{4})(?!$)/g, "$1:")}]:${a.readUInt16BE(2)}`;
  if (family === AF.UNIX) {
    const path = a.subarray(2);
    if (!path.length) return "(unnamed)";
    return path[0] === 0 ? "@" + path.subarray(1).toString() : path.subarray(0, path.indexOf(0) < 0 ? path.length : path.indexOf(0)).toString();
  }
  return `family ${family}`;
}

/** Bytes waiting in a queue without taking them (MSG_PEEK), up to `max`. */
export function peekBytes(fd: number, max: number): Buffer {
  if (max <= 0) return Buffer.alloc(0);
  const MSG_PEEK = 2, MSG_DONTWAIT = 0x40;
  const buf = Buffer.alloc(max);
  const r = rawSyscall(NR.recvfrom, fd, buf, max, MSG_PEEK | MSG_DONTWAIT, 0, 0);
  if (r === -11n) return Buffer.alloc(0);
  if (r < 0n) throw new SyscallError("recv(MSG_PEEK)", Number(-r));
  return Buffer.from(buf.subarray(0, Number(r)));
}

export function sendAll(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) off += sys("send", NR.sendto, fd, data.subarray(off), data.length - off, 0, 0, 0);
}

export function ioctlInt(fd: number, req: number): number {
  const v = Buffer.alloc(4);
  sys(`ioctl(0x${req.toString(16)})`, NR.ioctl, fd, req, v);
  return v.readInt32LE(0);
}
