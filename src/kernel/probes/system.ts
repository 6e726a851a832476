import fs from "node:fs";
import os from "node:os";
import { NR, O, sys, rawSyscall, errnoName, sleepSync, SyscallError } from "../sys.js";
import { readStatus } from "../procfs.js";
import { vdsoIdentity } from "../vdso.js";
import { type Probe, ok, missing } from "./probe.js";

/* Probes of sockets, capabilities, and the identity of this kernel. */

// Socket calls that sys.ts does not list (x86_64 numbers).
const NR_SOCK = { recvfrom: 45, listen: 50, getsockname: 51, accept4: 288 } as const;
const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = O.NONBLOCK;
const SOCK_CLOEXEC = O.CLOEXEC;
const SOL_TCP = 6;
const TCP_REPAIR = 19;
const TCP_REPAIR_QUEUE = 20;
const TCP_QUEUE_SEQ = 21;
const TCP_RECV_QUEUE = 1;
const TCP_SEND_QUEUE = 2;
const MSG_PEEK = 2;
const MSG_DONTWAIT = 0x40;
const FIONREAD = 0x541b;
const EAGAIN = 11;

function loopback(port: number): Buffer {
  const sa = Buffer.alloc(16); // struct sockaddr_in
  sa.writeUInt16LE(AF_INET, 0);
  sa.writeUInt16BE(port, 2);
  sa.set([127, 0, 0, 1], 4);
  return sa;
}
function setInt(fd: number, level: number, opt: number, v: number, what: string): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  sys(what, NR.setsockopt, fd, level, opt, b, 4);
}
function getU32(fd: number, level: number, opt: number, what: string): number {
  const b = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4, 0);
  sys(what, NR.getsockopt, fd, level, opt, b, len);
  return b.readUInt32LE(0);
}
/** Retry a non-blocking call for up to ~1 s while it says EAGAIN (loopback is quick, not instant). */
function retry(what: string, call: () => bigint): number {
  for (let i = 0; ; i++) {
    const r = call();
    if (r >= 0n) return Number(r);
    if (r !== BigInt(-EAGAIN) || i >= 1000) throw new SyscallError(what, Number(-r));
    sleepSync(1);
  }
}

const tcpRepairProbe: Probe = {
  name: "TCP_REPAIR",
  required: true,
  enables: "established TCP connections move with the process (sequence numbers and queues restored)",
  without: "processes with established TCP connections cannot be migrated (needs CAP_NET_ADMIN)",
  run() {
    const fds: number[] = [];
    const socket = (flags: number) => {
      const fd = sys("socket(AF_INET, SOCK_STREAM)", NR.socket, AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
      fds.push(fd);
      return fd;
    };
    try {
      const listener = socket(SOCK_NONBLOCK);
      sys("bind(127.0.0.1:0)", NR.bind, listener, loopback(0), 16);
      sys("listen", NR_SOCK.listen, listener, 1);
      const sa = Buffer.alloc(16);
      const salen = Buffer.alloc(4);
      salen.writeUInt32LE(16, 0);
      sys("getsockname", NR_SOCK.getsockname, listener, sa, salen);
      const port = sa.readUInt16BE(2);
      const client = socket(0);
      sys(`connect(127.0.0.1:${port})`, NR.connect, client, loopback(port), 16); // loopback: the handshake completes here
      const server = retry("accept4", () => rawSyscall(NR_SOCK.accept4, listener, 0, 0, SOCK_CLOEXEC));
      fds.push(server);
      sys("write", NR.write, server, Buffer.from("ferry"), 5);
      const queued = Buffer.alloc(4);
      for (let i = 0; i < 1000; i++) {
        sys("ioctl(FIONREAD)", NR.ioctl, client, FIONREAD, queued);
        if (queued.readInt32LE(0) >= 5) break;
        sleepSync(1);
      }
      // What dump does to an established socket: repair mode, then read each queue and its seq.
      setInt(client, SOL_TCP, TCP_REPAIR, 1, "setsockopt(TCP_REPAIR, 1)");
      setInt(client, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "setsockopt(TCP_REPAIR_QUEUE, RECV)");
      getU32(client, SOL_TCP, TCP_QUEUE_SEQ, "getsockopt(TCP_QUEUE_SEQ)");
      const peek = Buffer.alloc(16);
      const n = sys("recvfrom(MSG_PEEK)", NR_SOCK.recvfrom, client, peek, peek.length, MSG_PEEK | MSG_DONTWAIT, 0, 0);
      setInt(client, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "setsockopt(TCP_REPAIR_QUEUE, SEND)");
      getU32(client, SOL_TCP, TCP_QUEUE_SEQ, "getsockopt(TCP_QUEUE_SEQ)");
      if (peek.subarray(0, n).toString() !== "ferry") return missing(`in repair mode the receive queue read back ${n} bytes, not the 5 sent`);
      return ok("repair mode on an established loopback connection: both sequence numbers and the receive queue read");
    } finally {
      // The repaired socket closes silently (no FIN, no RST), as a dumped one does.
      for (const fd of fds.reverse()) fs.closeSync(fd);
    }
  },
};

const CAP_SYS_RESOURCE = 24;
const F_SETPIPE_SZ = 1031;

const capSysResourceProbe: Probe = {
  name: "CAP_SYS_RESOURCE",
  required: false,
  enables: "no capability limits on restore: pipes of any size, rlimits above their hard values",
  without: "restored pipes hold at most fs.pipe-max-size; limits cannot be raised above hard values; ferry uses PR_SET_MM_MAP, not single PR_SET_MM calls",
  run() {
    const capEff = BigInt("0x" + (readStatus(process.pid).CapEff ?? "0"));
    const has = ((capEff >> BigInt(CAP_SYS_RESOURCE)) & 1n) === 1n;
    const pipeMax = Number(fs.readFileSync("/proc/sys/fs/pipe-max-size", "utf8"));
    const p = Buffer.alloc(8);
    sys("pipe2", NR.pipe2, p, O.CLOEXEC);
    let r: bigint;
    try {
      r = rawSyscall(NR.fcntl, p.readInt32LE(4), F_SETPIPE_SZ, pipeMax * 2);
    } finally {
      fs.closeSync(p.readInt32LE(0));
      fs.closeSync(p.readInt32LE(4));
    }
    const mib = (n: number) => `${(n / (1 << 20)).toString()} MiB`;
    const tried = `F_SETPIPE_SZ(${mib(pipeMax * 2)}) ${r >= 0n ? "allowed" : errnoName(Number(-r))}`;
    if (!has) return missing(`not in CapEff; ${tried}; fs.pipe-max-size is ${mib(pipeMax)}`);
    return ok(`in CapEff; ${tried}`);
  },
};

const kernelProbe: Probe = {
  name: "kernel",
  required: false,
  enables: "recorded in images, so a restore elsewhere can say which kernel made them",
  without: "",
  run() {
    const release = os.release();
    return ok(`Linux ${release} ${os.version()} ${os.machine()}`, release);
  },
};

const vdsoProbe: Probe = {
  name: "vDSO",
  required: false,
  enables: "recorded in images: restore refuses images whose vDSO differs (processes hold pointers into it)",
  without: "no vDSO here (vdso=0?): ferry injects system calls through the vDSO and cannot work",
  run() {
    const { sha256, size } = vdsoIdentity();
    if (!size) return missing("no [vdso] mapping in /proc/self/maps");
    const hex = sha256.toString("hex");
    return ok(`sha256 ${hex} (${size} bytes)`, hex);
  },
};

export const systemProbes: Probe[] = [tcpRepairProbe, capSysResourceProbe, kernelProbe, vdsoProbe];
