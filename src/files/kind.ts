import type fs from "node:fs";
import type { FileObjectImage } from "../images/types.js";
import type { ImageDir } from "../images/store.js";
import type { Injector } from "../kernel/inject.js";

/** What a kind gets to look at when it dumps one open file description of the target. */
export interface DumpFdContext {
  /** whose fd this is: the dumped process's, or ferry's own copy of a file in flight (SCM_RIGHTS) */
  pid: number;
  fd: number;
  /** for messages: "pid 4242 fd 7", or what carried a file in flight */
  where: string;
  /** readlink of /proc/PID/fd/N */
  link: string;
  /** parsed /proc/PID/fdinfo/N (`__raw` holds the whole text) */
  fdinfo: Record<string, string>;
  /** stat of the file itself (through /proc/PID/fd/N) */
  stat: fs.Stats;
  /** ferry's own copy of the fd (pidfd_getfd); the engine closes it */
  localFd: number;
  images: ImageDir;
  /** per-dump state shared by objects of one kind (a pipe's data is dumped once for both ends) */
  shared: Map<string, unknown>;
  /**
   * Undo what the dump changed in the live object (a TCP socket left in repair mode), run when the
   * process is let go instead of killed: after --leave-running, or when the dump fails.
   */
  onRelease(undo: () => void): void;
  /** Run at the end of the dump whatever happens (close what the kind kept open). */
  onDone(close: () => void): void;
  /**
   * A file in flight (an fd riding in a unix socket's queue) of which ferry holds a copy: dumped like
   * any fd, and its id returned. The table owns `localFd` from then on. `where` names the message.
   */
  dumpInFlight(localFd: number, where: string): number;
  /**
   * A repair-mode TCP socket (the kind's own copy, still closed by the kind) that a holder keeps
   * alive for the restore after the process is killed (see tcpHolder.ts).
   */
  holdForRestore(fd: number): void;
}

/** What a kind gets when it rebuilds an object on restore. */
export interface RestoreFileContext {
  images: ImageDir;
  /** every object of files.img (a socket looks for its peer) */
  files: FileObjectImage[];
  /** objects of the same kind may share state (the two ends of one pipe) */
  shared: Map<string, unknown>;
  /** run when the restore is over, whatever its outcome */
  cleanup: (() => void)[];
  /** ferry's fd of every object opened so far, by id (files in flight are opened before their carrier) */
  opened: ReadonlyMap<number, number>;
}

/** One kind of kernel object behind an fd: matched, dumped and reopened by its own module. */
export interface FileKind {
  kind: string;
  /**
   * Its state names fds of the process holding it (epoll's watches): it cannot be dumped from a
   * copy in flight.
   */
  boundToOwner?: boolean;
  matches(ctx: DumpFdContext): boolean;
  /** kind-specific fields of the image (id, kind, flags and pos are filled by the engine) */
  dump(ctx: DumpFdContext): Partial<FileObjectImage>;
  /** open the object inside ferry; the fd returned is passed into the target, then closed */
  open(obj: FileObjectImage, ctx: RestoreFileContext): number;
  /**
   * True when the object can only be opened once the target's other fds are in place (a /proc file
   * of the restored process itself, such as its own fdinfo): open() is then called during
   * installation, after the target's other fds.
   */
  late?(obj: FileObjectImage): boolean;
  /**
   * After every fd is in place in the target (epoll registrations use target fd numbers); ferry's
   * own copies of the objects are still open, and `ctx` is the one open() was given.
   */
  finish?(obj: FileObjectImage, inj: Injector, targetFds: number[], ctx: RestoreFileContext): void;
}
