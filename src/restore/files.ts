import fs from "node:fs";
import { F, NR, O, sys, rawSyscall } from "../kernel/sys.js";
import type { Injector } from "../kernel/inject.js";
import type { ImageDir } from "../images/store.js";
import type { FdTableImage, FilesImage, FileObjectImage } from "../images/types.js";
import { kindByName } from "../files/registry.js";
import type { RestoreFileContext } from "../files/kind.js";

const SEEK_SET = 0;

/** File objects opened inside ferry, before the task exists; closed by close(). */
export class OpenedFiles {
  readonly byId = new Map<number, number>();
  readonly ctx: RestoreFileContext;
  constructor(images: ImageDir, readonly files: FilesImage) {
    this.ctx = { images, files: files.files, shared: new Map(), cleanup: [], opened: this.byId };
  }

  /** Every object but the late ones (see FileKind.late), which open when their fd is installed. */
  openAll(): void {
    for (const obj of this.files.files) if (!isLate(obj)) this.open(obj);
  }

  /** ferry's fd of the object with this id, opening a late object now. */
  fdOf(id: number): number | undefined {
    const fd = this.byId.get(id);
    if (fd !== undefined) return fd;
    const obj = this.files.files.find((o) => o.id === id);
    return obj && isLate(obj) ? this.open(obj) : undefined;
  }

  private open(obj: FileObjectImage): number {
    const fd = kindByName(obj.kind).open(obj, this.ctx);
    this.byId.set(obj.id, fd);
    if (obj.pos > 0) {
      const r = rawSyscall(NR.lseek, fd, obj.pos, SEEK_SET);
      if (r < 0n && r !== -29n /* ESPIPE */) sys(`lseek ${obj.path}`, NR.lseek, fd, obj.pos, SEEK_SET);
    }
    return fd;
  }

  close(): void {
    for (const fd of this.byId.values()) fs.closeSync(fd);
    this.byId.clear();
    for (const c of this.ctx.cleanup.splice(0)) c();
  }
}

/**
 * Put every fd in place inside the task: it takes ferry's copy itself with pidfd_getfd (through a
 * pidfd of ferry it opens), then dup3s it to its number.
 */
export function installFds(inj: Injector, table: FdTableImage, opened: OpenedFiles): void {
  if (!table.fds.length) return;
  const maxFd = Math.max(...table.fds.map((f) => f.fd));
  const first = inj.ok("pidfd_open(ferry)", NR.pidfd_open, process.pid, 0);
  const pidfd = inj.ok("fcntl(F_DUPFD_CLOEXEC)", NR.fcntl, first, F.DUPFD_CLOEXEC, maxFd + 1);
  inj.ok("close", NR.close, first);
  const late = new Set(opened.files.files.filter(isLate).map((o) => o.id));
  const order = [...table.fds].sort((a, b) => Number(late.has(a.fileId)) - Number(late.has(b.fileId)) || a.fd - b.fd);
  for (const f of order) {
    const local = opened.fdOf(f.fileId);
    if (local === undefined) throw new Error(`fd ${f.fd}: file ${f.fileId} missing from files.img`);
    const n = inj.ok(`pidfd_getfd(fd ${f.fd})`, NR.pidfd_getfd, pidfd, local, 0);
    if (n !== f.fd) {
      inj.ok(`dup3(${n}, ${f.fd})`, NR.dup3, n, f.fd, f.cloexec ? O.CLOEXEC : 0);
      inj.ok("close", NR.close, n);
    } else {
      inj.ok("fcntl(F_SETFD)", NR.fcntl, n, F.SETFD, f.cloexec ? 1 : 0);
    }
  }
  inj.ok("close", NR.close, pidfd);
  for (const obj of opened.files.files) {
    const kind = kindByName(obj.kind);
    if (kind.finish) kind.finish(obj, inj, fdsOf(table, obj), opened.ctx);
  }
}

function isLate(obj: FileObjectImage): boolean {
  return kindByName(obj.kind).late?.(obj) ?? false;
}

function fdsOf(table: FdTableImage, obj: FileObjectImage): number[] {
  return table.fds.filter((f) => f.fileId === obj.id).map((f) => f.fd);
}
