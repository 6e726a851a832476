import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { FerryError } from "../errors.js";
import { native } from "../kernel/native.js";
import { NR, rawSyscall, sleepSync, sys } from "../kernel/sys.js";
import { readStat } from "../kernel/procfs.js";
import { AF, SOL_SOCKET } from "./sockopt.js";
import { closeAll, recvWithFds, sendWithFds } from "./scm.js";

/*
 * Between `ferry dump` and `ferry restore` the dumped TCP connections must live on: a segment the
 * peer sends while no socket has the connection is answered with a reset. The dump hands its
 * repair-mode copies to a small holder, `ferry hold-sockets`, a detached process that inherits
 * them at spawn (nothing to wait for: once spawn returns, they are held). A socket in repair mode
 * sends nothing of its own but still takes in and acknowledges what the peer sends, so the held
 * socket, not the image, has the connection's latest state: the restore takes it back from the
 * holder over DIR/tcp-holder.sock and installs it instead of re-creating the connection.
 *
 * The holder exits when the restore has taken the sockets, when its socket file disappears
 * (images removed), or after its time is up (`ferry dump --hold-tcp SECONDS`); its sockets then
 * close quietly, still in repair mode. With no holder (images moved to another host, holder gone)
 * the restore re-creates each connection from the image, as before.
 */
export const HOLDER_SOCKET = "tcp-holder.sock";
export const HOLDER_PID = "tcp-holder.pid";

const SOCK_SEQPACKET = 5, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
const SO_RCVTIMEO = 20, SO_SNDTIMEO = 21;
const NR_ACCEPT4 = 288;
/** SCM_MAX_FD: fds per message */
const BATCH = 253;
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../cli/main.js");

/** A repair-mode socket the dump keeps for the restore, with the id of its object in files.img. */
export interface HeldSocket {
  id: number;
  fd: number;
}

function unixAddress(file: string): Buffer {
  const b = Buffer.alloc(110);
  b.writeUInt16LE(AF.UNIX, 0);
  Buffer.from(file).copy(b, 2);
  return b;
}

/**
 * Start the holder with its own copies of `sockets` (they are its fds 3, 4, ...). Returns false,
 * holding nothing, when the images directory's path is too long for a unix socket.
 */
export function spawnHolder(dir: string, sockets: HeldSocket[], seconds: number): boolean {
  const file = path.resolve(dir, HOLDER_SOCKET);
  if (Buffer.byteLength(file) > 107) return false;
  const child = spawn(process.execPath, [CLI, "hold-sockets", "-D", path.resolve(dir), "--ids", sockets.map((s) => s.id).join(","), "--hold-for", String(seconds)], {
    detached: true, stdio: ["ignore", "ignore", "ignore", ...sockets.map((s) => s.fd)],
  });
  child.unref();
  fs.writeFileSync(path.join(dir, HOLDER_PID), `${child.pid}\n`, { mode: 0o600 });
  return true;
}

/** The holder's side: hold fds 3.. (their ids in `ids`) until a restore takes them or time is up. */
export function runHolder(dir: string, ids: number[], seconds: number): void {
  const fds = ids.map((_, i) => 3 + i);
  const file = path.join(dir, HOLDER_SOCKET);
  fs.rmSync(file, { force: true });
  const listener = sys("socket(AF_UNIX)", NR.socket, AF.UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const addr = unixAddress(file);
  sys(`bind(${file})`, NR.bind, listener, addr, addr.length);
  fs.chmodSync(file, 0o600);
  sys("listen", NR.listen, listener, 4);
  const end = () => {
    fs.rmSync(file, { force: true });
    process.exit(0);
  };
  setTimeout(end, seconds * 1000);
  setInterval(() => fs.existsSync(file) || end(), 1000);
  process.on("SIGTERM", end);
  native.pollStart(listener, 1, () => {
    const r = rawSyscall(NR_ACCEPT4, listener, 0, 0, SOCK_CLOEXEC);
    if (r < 0n) return;
    const conn = Number(r);
    try {
      for (let i = 0; i < fds.length; i += BATCH) {
        const batch = Buffer.from(JSON.stringify({ ids: ids.slice(i, i + BATCH) }));
        if (sendWithFds(conn, batch, fds.slice(i, i + BATCH)) < 0n) return; // the restore went away: keep holding
      }
      sendWithFds(conn, Buffer.from(JSON.stringify({ end: true })), []);
    } finally {
      fs.closeSync(conn);
    }
    end();
  });
}

/** Is the holder the dump started still alive (and not some other process that got its PID)? */
function holderAlive(dir: string): boolean {
  try {
    const pid = Number(fs.readFileSync(path.join(dir, HOLDER_PID), "utf8"));
    return readStat(pid).fields[0] !== "Z" && fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("hold-sockets");
  } catch {
    return false;
  }
}

/**
 * The restore's side: the held sockets by file id, or an empty map when no holder is there. The
 * caller owns the fds. A holder that is still starting is waited for (a few seconds at most).
 */
export function takeHeldSockets(dir: string): Map<number, number> {
  const held = new Map<number, number>();
  if (!fs.existsSync(path.join(dir, HOLDER_PID))) return held;
  const file = path.join(dir, HOLDER_SOCKET);
  const addr = unixAddress(file);
  const sock = sys("socket(AF_UNIX)", NR.socket, AF.UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  try {
    const tv = Buffer.alloc(16);
    tv.writeBigInt64LE(5n, 0);
    sys("setsockopt(SO_RCVTIMEO)", NR.setsockopt, sock, SOL_SOCKET, SO_RCVTIMEO, tv, 16);
    sys("setsockopt(SO_SNDTIMEO)", NR.setsockopt, sock, SOL_SOCKET, SO_SNDTIMEO, tv, 16);
    for (let waited = 0; rawSyscall(NR.connect, sock, addr, addr.length) < 0n; waited += 20) {
      if (waited >= 5000 || !holderAlive(dir)) return held;
      sleepSync(20);
    }
    for (;;) {
      const m = recvWithFds(sock, 64 << 10, 0);
      if (!m || !m.data.length) throw new Error("the TCP holder stopped before it gave every socket");
      const msg = JSON.parse(m.data.toString("utf8")) as { ids?: number[]; end?: boolean };
      if (msg.end) break;
      const ids = msg.ids ?? [];
      if (ids.length !== m.fds.length) {
        closeAll(m.fds);
        throw new Error(`the TCP holder sent ${m.fds.length} sockets for ${ids.length} ids`);
      }
      ids.forEach((id, i) => held.set(id, m.fds[i]));
    }
    return held;
  } catch (e) {
    closeAll([...held.values()]);
    throw new FerryError("FERRY_TCP_HOLDER", `cannot take the TCP connections back from the holder at ${file}: ${(e as Error).message}`);
  } finally {
    fs.closeSync(sock);
  }
}
