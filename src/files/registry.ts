import fs from "node:fs";
import { FerryError } from "../errors.js";
import { NR, sys, rawSyscall } from "../kernel/sys.js";
import { listFds, readFdinfo } from "../kernel/procfs.js";
import type { ImageDir } from "../images/store.js";
import type { FdImage, FileObjectImage } from "../images/types.js";
import type { DumpFdContext, FileKind } from "./kind.js";
import { regularFile } from "./regular.js";
import { charDevice } from "./chardev.js";
import { pipe, fifo } from "./pipe.js";
import { eventfd } from "./eventfd.js";
import { signalfd } from "./signalfd.js";
import { timerfd } from "./timerfd.js";
import { epoll } from "./epoll.js";
import { memfd } from "./memfd.js";

/** Every kind of file ferry knows, asked in order; adding a kind means adding it here. */
export const FILE_KINDS: FileKind[] = [pipe, fifo, charDevice, eventfd, signalfd, timerfd, epoll, memfd, regularFile];

export function kindByName(kind: string): FileKind {
  const k = FILE_KINDS.find((x) => x.kind === kind);
  if (!k) throw new FerryError("FERRY_IMAGE_CORRUPT", `files.img: unknown file kind "${kind}"`);
  return k;
}

const KCMP_FILE = 0;
const O_CLOEXEC_FDINFO = 0o2000000;

/** A file object for every open file description of the target; fds that share one share the id. */
export function dumpFds(pid: number, images: ImageDir, firstId: number): { fds: FdImage[]; files: FileObjectImage[] } {
  const pidfd = sys("pidfd_open", NR.pidfd_open, pid, 0);
  const fds: FdImage[] = [];
  const files: FileObjectImage[] = [];
  const byInode = new Map<string, { fd: number; id: number }[]>();
  const shared = new Map<string, unknown>();
  try {
    for (const fd of listFds(pid)) {
      const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      const fdinfo = readFdinfo(pid, fd);
      const flags = parseInt(fdinfo.flags ?? "0", 8);
      const cloexec = (flags & O_CLOEXEC_FDINFO) !== 0;
      let stat: fs.Stats;
      try {
        stat = fs.statSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        stat = fs.fstatSync(0); // placeholder, replaced below through the local copy
      }
      const inodeKey = `${stat.dev}:${stat.ino}:${link}`;
      const same = (byInode.get(inodeKey) ?? []).find((o) => rawSyscall(NR.kcmp, pid, pid, KCMP_FILE, o.fd, fd) === 0n);
      if (same) {
        fds.push({ fd, fileId: same.id, cloexec });
        continue;
      }
      const localFd = sys(`pidfd_getfd(pid ${pid} fd ${fd})`, NR.pidfd_getfd, pidfd, fd, 0);
      try {
        stat = fs.fstatSync(localFd);
        const ctx: DumpFdContext = { pid, fd, link, fdinfo, stat, localFd, images, shared };
        const kind = FILE_KINDS.find((k) => k.matches(ctx));
        if (!kind) throw new FerryError("FERRY_UNSUPPORTED", `pid ${pid} fd ${fd}: ${link} is not supported yet`);
        const id = firstId + files.length;
        files.push(fileObject({
          ...kind.dump(ctx),
          id, kind: kind.kind,
          flags: flags & ~O_CLOEXEC_FDINFO,
          pos: Number(fdinfo.pos ?? 0),
        }));
        byInode.set(inodeKey, [...(byInode.get(inodeKey) ?? []), { fd, id }]);
        fds.push({ fd, fileId: id, cloexec });
      } finally {
        fs.closeSync(localFd);
      }
    }
  } finally {
    fs.closeSync(pidfd);
  }
  return { fds, files };
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
