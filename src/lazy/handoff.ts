import fs from "node:fs";
import path from "node:path";
import { FerryError } from "../errors.js";
import { native } from "../kernel/native.js";
import { NR, rawSyscall, sys, SyscallError } from "../kernel/sys.js";
import { epochUsOf } from "../kernel/clock.js";
import type { TargetUffd } from "./attach.js";

/*
 * How `ferry restore --lazy` hands the process's userfaultfd to `ferry lazy-pages`, CRIU-style:
 * a unix socket in the images directory. One SOCK_SEQPACKET message, the fd riding along with
 * SCM_RIGHTS, answered by one message ("ok" or an error line).
 */
export const HANDOFF_SOCKET = "lazy-pages.sock";

const AF_UNIX = 1, SOCK_SEQPACKET = 5, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1, SCM_RIGHTS = 1, SO_RCVTIMEO = 20, SO_SNDTIMEO = 21;
const MSG_CMSG_CLOEXEC = 0x40000000;
const NR_LISTEN = 50, NR_ACCEPT4 = 288;
const MAX_MESSAGE = 64 << 10;
const UV_READABLE = 1;
const EAGAIN = 11;

/** What travels with the fd. */
export interface HandoffInfo {
  pid: number;
  features: number;
  ranges: { start: number; end: number }[];
  /** when the process resumes (epoch µs): right after this message is answered */
  resumedAtUs: number;
}

function sockaddr(file: string): Buffer {
  const p = Buffer.from(file);
  if (p.length > 107) {
    throw new FerryError("FERRY_PATH_TOO_LONG", `${file}: a unix socket path must be at most 107 bytes: use a shorter images directory`);
  }
  const b = Buffer.alloc(110);
  b.writeUInt16LE(AF_UNIX, 0);
  p.copy(b, 2);
  return b;
}

/**
 * struct msghdr (56 bytes) followed by its one iovec, in one buffer so that nothing it points to
 * can be collected before the call. Callers pass `data` and `control` to the system call as
 * unused extra arguments, which keeps them alive through it too.
 */
export function msghdr(data: Buffer, control: Buffer | null): Buffer {
  const hdr = Buffer.alloc(72);
  hdr.writeBigUInt64LE(native.addressOf(data), 56);
  hdr.writeBigUInt64LE(BigInt(data.length), 64);
  hdr.writeBigUInt64LE(native.addressOf(hdr) + 56n, 16);
  hdr.writeBigUInt64LE(1n, 24);
  if (control) {
    hdr.writeBigUInt64LE(native.addressOf(control), 32);
    hdr.writeBigUInt64LE(BigInt(control.length), 40);
  }
  return hdr;
}

/** cmsghdr carrying one fd: len 20 (CMSG_LEN(4)), SOL_SOCKET, SCM_RIGHTS, the fd; 24 bytes (CMSG_SPACE). */
export function rightsControl(fd: number): Buffer {
  const c = Buffer.alloc(24);
  c.writeBigUInt64LE(20n, 0);
  c.writeInt32LE(SOL_SOCKET, 8);
  c.writeInt32LE(SCM_RIGHTS, 12);
  c.writeInt32LE(fd, 16);
  return c;
}

function timeouts(fd: number, seconds: number): void {
  const tv = Buffer.alloc(16);
  tv.writeBigInt64LE(BigInt(seconds), 0);
  sys("setsockopt(SO_RCVTIMEO)", NR.setsockopt, fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16);
  sys("setsockopt(SO_SNDTIMEO)", NR.setsockopt, fd, SOL_SOCKET, SO_SNDTIMEO, tv, 16);
}

/**
 * The restore side (synchronous: the process is still stopped under ptrace): connect to the
 * daemon's socket in `dir`, send the uffd and wait for the daemon to take it. Our copy of the fd
 * is closed afterwards in any case.
 */
export function handOffUffd(dir: string, uffd: TargetUffd, timeoutSeconds = 10): void {
  const file = path.join(dir, HANDOFF_SOCKET);
  const sock = sys("socket(AF_UNIX)", NR.socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  try {
    timeouts(sock, timeoutSeconds);
    const addr = sockaddr(file);
    const r = rawSyscall(NR.connect, sock, addr, addr.length);
    if (r < 0n) {
      const e = new SyscallError("connect", Number(-r));
      throw new FerryError("FERRY_NO_DAEMON", `no lazy-pages daemon at ${file} (${e.code}): start \`ferry lazy-pages --images ${dir} --page-server ADDR:PORT\` first, or restore with --page-server`);
    }
    const info: HandoffInfo = { pid: uffd.pid, features: uffd.features, ranges: uffd.ranges, resumedAtUs: epochUsOf(performance.now()) };
    const data = Buffer.from(JSON.stringify(info));
    const control = rightsControl(uffd.fd);
    const hdr = msghdr(data, control);
    sys("sendmsg(userfaultfd)", NR.sendmsg, sock, hdr, 0, data, control);
    const reply = Buffer.alloc(4096);
    const rh = msghdr(reply, null);
    const n = rawSyscall(NR.recvmsg, sock, rh, 0, reply);
    if (n <= 0n) {
      throw new FerryError("FERRY_DAEMON_SILENT", `the lazy-pages daemon at ${file} did not take the process (${n === 0n ? "it closed the connection" : new SyscallError("recvmsg", Number(-n)).code})`);
    }
    const text = reply.subarray(0, Number(n)).toString("utf8");
    if (text !== "ok") throw new FerryError("FERRY_DAEMON_REFUSED", `the lazy-pages daemon refused the process: ${text}`);
  } finally {
    fs.closeSync(sock);
    fs.closeSync(uffd.fd);
  }
}

/**
 * The daemon side: listen on `dir`/lazy-pages.sock (libuv-polled, never blocking) and call
 * `onUffd` for each process handed over; what it throws is sent back as the refusal.
 */
export class HandoffListener {
  private polls = new Map<number, object>();
  private closed = false;

  private constructor(readonly file: string, private readonly fd: number, private readonly onUffd: (t: TargetUffd, info: HandoffInfo) => void) {}

  static listen(dir: string, onUffd: (t: TargetUffd, info: HandoffInfo) => void): HandoffListener {
    const file = path.join(dir, HANDOFF_SOCKET);
    const addr = sockaddr(file);
    fs.rmSync(file, { force: true }); // a stale socket of a previous daemon
    const fd = sys("socket(AF_UNIX)", NR.socket, AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    try {
      sys(`bind(${file})`, NR.bind, fd, addr, addr.length);
      fs.chmodSync(file, 0o600);
      sys("listen", NR_LISTEN, fd, 4);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    const l = new HandoffListener(file, fd, onUffd);
    l.polls.set(fd, native.pollStart(fd, UV_READABLE, () => l.accept()));
    return l;
  }

  private accept(): void {
    for (;;) {
      const r = rawSyscall(NR_ACCEPT4, this.fd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (r < 0n) return; // EAGAIN: no more
      const conn = Number(r);
      this.polls.set(conn, native.pollStart(conn, UV_READABLE, () => this.receive(conn)));
    }
  }

  private receive(conn: number): void {
    const data = Buffer.alloc(MAX_MESSAGE);
    const control = Buffer.alloc(64);
    const hdr = msghdr(data, control);
    const n = rawSyscall(NR.recvmsg, conn, hdr, MSG_CMSG_CLOEXEC, data, control);
    if (n === -BigInt(EAGAIN)) return;
    const fd = receivedFd(control, Number(hdr.readBigUInt64LE(40)));
    let reply = "ok";
    try {
      if (n <= 0n) throw new Error("empty message");
      if (fd < 0) throw new Error("no userfaultfd came with the message");
      const info = JSON.parse(data.subarray(0, Number(n)).toString("utf8")) as HandoffInfo;
      this.onUffd({ fd, pid: info.pid, features: info.features, ranges: info.ranges }, info);
    } catch (e) {
      if (fd >= 0) fs.closeSync(fd);
      reply = (e as Error).message || "refused";
    }
    const out = Buffer.from(reply);
    const oh = msghdr(out, null);
    rawSyscall(NR.sendmsg, conn, oh, 0, out);
    this.drop(conn);
  }

  private drop(fd: number): void {
    const p = this.polls.get(fd);
    if (p) native.pollStop(p);
    this.polls.delete(fd);
    fs.closeSync(fd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of [...this.polls.keys()]) this.drop(fd);
    fs.rmSync(this.file, { force: true });
  }
}

/** The fd of an SCM_RIGHTS control message, or -1. */
function receivedFd(control: Buffer, controlLen: number): number {
  if (controlLen < 20) return -1;
  if (control.readInt32LE(8) !== SOL_SOCKET || control.readInt32LE(12) !== SCM_RIGHTS) return -1;
  return control.readInt32LE(16);
}
