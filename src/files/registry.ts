import fs from "node:fs";
import { FerryError } from "../errors.js";
import { F, NR, sys, rawSyscall } from "../kernel/sys.js";
import { listFds, readFdinfo } from "../kernel/procfs.js";
import type { ImageDir } from "../images/store.js";
import type { FdImage, FileObjectImage } from "../images/types.js";
import type { DumpFdContext, FileKind } from "./kind.js";
import type { HeldSocket } from "./tcpHolder.js";
import { regularFile } from "./regular.js";
import { charDevice } from "./chardev.js";
import { pipe, fifo } from "./pipe.js";
import { eventfd } from "./eventfd.js";
import { signalfd } from "./signalfd.js";
import { timerfd } from "./timerfd.js";
import { epoll } from "./epoll.js";
import { memfd } from "./memfd.js";
import { inetSocket } from "./inet.js";
import { unixSocket } from "./unix.js";
import { inotify } from "./inotify.js";
import { netlinkSocket } from "./netlink.js";
import { getsockoptInt, SOL_SOCKET, SO } from "./sockopt.js";

/** Every kind of file ferry knows, asked in order; adding a kind means adding it here. */
export const FILE_KINDS: FileKind[] = [pipe, fifo, charDevice, eventfd, signalfd, timerfd, epoll, memfd, inetSocket, unixSocket, netlinkSocket, inotify, regularFile];

export function kindByName(kind: string): FileKind {
  const k = FILE_KINDS.find((x) => x.kind === kind);
  if (!k) throw new FerryError("FERRY_IMAGE_CORRUPT", `files.img: unknown file kind "${kind}"`);
  return k;
}

const KCMP_FILE = 0;
const O_CLOEXEC_FDINFO = 0o2000000;

/**
 * The open file descriptions of a whole tree: fds that share one description (dup, inherited
 * across fork, passed over a socket) share one id, in one process or across processes.
 */
export class FileTable {
  readonly files: FileObjectImage[] = [];
  private readonly byInode = new Map<string, { pid: number; fd: number; id: number }[]>();
  private readonly shared = new Map<string, unknown>();
  /** repair-mode TCP sockets a holder may keep until the restore (see tcpHolder.ts) */
  readonly held: HeldSocket[] = [];
  private readonly releaseHooks: (() => void)[] = [];
  private readonly doneHooks: (() => void)[] = [];
  /** descriptions being dumped: one met again in its own queue is a cycle of files in flight */
  private readonly dumping = new Set<string>();
  constructor(private readonly images: ImageDir) {}

  /** The processes run on as they were (left running, or the dump failed): undo what kinds changed. */
  release(): void {
    for (const undo of this.releaseHooks.splice(0)) {
      try {
        undo();
      } catch { /* best effort: the object may be gone */ }
    }
  }

  /** The dump is over, whatever its outcome. */
  done(): void {
    for (const close of this.doneHooks.splice(0)) close();
  }

  /** The fd table of one process; new descriptions are added to the table. */
  dumpFds(pid: number): FdImage[] {
    const pidfd = sys("pidfd_open", NR.pidfd_open, pid, 0);
    const fds: FdImage[] = [];
    try {
      for (const fd of listFds(pid)) {
        const fdinfo = readFdinfo(pid, fd);
        const cloexec = (parseInt(fdinfo.flags ?? "0", 8) & O_CLOEXEC_FDINFO) !== 0;
        const copy = () => sys(`pidfd_getfd(pid ${pid} fd ${fd})`, NR.pidfd_getfd, pidfd, fd, 0);
        fds.push({ fd, fileId: this.dumpFile(pid, fd, `pid ${pid} fd ${fd}`, copy, fdinfo), cloexec });
      }
    } finally {
      fs.closeSync(pidfd);
    }
    return fds;
  }

  /**
   * A file in flight of which ferry holds `localFd` (a peek at a unix socket's queue handed it over):
   * it is looked at through ferry's own /proc entries, and kept open until the dump is over so that
   * later fds can still be compared with it (kcmp).
   */
  private dumpInFlight(localFd: number, where: string): number {
    this.doneHooks.push(() => fs.closeSync(localFd));
    const copy = () => sys("fcntl(F_DUPFD_CLOEXEC)", NR.fcntl, localFd, F.DUPFD_CLOEXEC, 0);
    return this.dumpFile(process.pid, localFd, where, copy);
  }

  /** The id of the description behind `pid`'s `fd`: one already in the table, or a new one dumped now. */
  private dumpFile(pid: number, fd: number, where: string, copy: () => number, fdinfo = readFdinfo(pid, fd)): number {
    const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    let stat: fs.Stats | null = null;
    try {
      stat = fs.statSync(`/proc/${pid}/fd/${fd}`);
    } catch { /* anonymous inodes: looked at through the local copy below */ }
    const inodeKey = stat ? `${stat.dev}:${stat.ino}:${link}` : `?:${link}`;
    const seen = this.byInode.get(inodeKey) ?? [];
    const same = seen.find((o) => rawSyscall(NR.kcmp, o.pid, pid, KCMP_FILE, o.fd, fd) === 0n);
    if (same) return same.id;
    if (this.dumping.has(inodeKey)) {
      throw new FerryError("FERRY_UNSUPPORTED", `${where}: a unix socket in flight inside its own queue (or in the queue of a socket in flight inside it) is not supported`);
    }
    const localFd = copy();
    const held: number[] = [];
    this.dumping.add(inodeKey);
    try {
      const ctx: DumpFdContext = {
        pid, fd, where, link, fdinfo, stat: fs.fstatSync(localFd), localFd, images: this.images, shared: this.shared,
        onRelease: (undo) => this.releaseHooks.push(undo),
        onDone: (close) => this.doneHooks.push(close),
        dumpInFlight: (f, w) => this.dumpInFlight(f, w),
        holdForRestore: (f) => held.push(f),
      };
      const kind = FILE_KINDS.find((k) => k.matches(ctx));
      if (!kind) throw new FerryError("FERRY_UNSUPPORTED", `${where}: ${describeUnsupported(ctx)} is not supported`);
      if (kind.boundToOwner && pid === process.pid) {
        throw new FerryError("FERRY_UNSUPPORTED", `${where}: ${link} in flight is not supported (its state names fds of the process that sent it)`);
      }
      const flags = parseInt(fdinfo.flags ?? "0", 8);
      const fields = kind.dump(ctx);
      // files in flight dumped by kind.dump come first: a restore opens them before their carrier
      const id = this.files.length + 1;
      this.files.push(fileObject({
        ...fields,
        id, kind: kind.kind,
        flags: flags & ~O_CLOEXEC_FDINFO,
        pos: Number(fdinfo.pos ?? 0),
      }));
      this.byInode.set(inodeKey, [...(this.byInode.get(inodeKey) ?? []), { pid, fd, id }]);
      for (const f of held) this.held.push({ id, fd: f });
      return id;
    } finally {
      this.dumping.delete(inodeKey);
      fs.closeSync(localFd);
    }
  }
}

const FAMILIES: Record<number, string> = {
  1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET", 40: "AF_VSOCK", 44: "AF_XDP",
};

/** What the fd is, in the words a user would look for ("socket AF_PACKET", "anon_inode:[pidfd]"). */
function describeUnsupported(c: DumpFdContext): string {
  if (!c.stat.isSocket()) return c.link;
  const family = getsockoptInt(c.localFd, SOL_SOCKET, SO.DOMAIN);
  return `socket ${FAMILIES[family] ?? `family ${family}`} (${c.link})`;
}

/** A complete FileObjectImage from the fields a kind filled. */
export function fileObject(p: Partial<FileObjectImage>): FileObjectImage {
  return {
    id: 0, kind: "", path: "", flags: 0, pos: 0, mode: 0, inode: 0, size: 0, deleted: false,
    data: Buffer.alloc(0), blob: "", blobCrc32: 0, seals: 0, pipeSize: 0, pipeWriteEnd: false,
    counter: 0, semaphore: false, sigmask: Buffer.alloc(0), clockId: 0, intervalNs: 0, valueNs: 0,
    ticks: 0, settimeFlags: 0, targets: [], name: "", rdev: 0,
    ...p,
  };
}
