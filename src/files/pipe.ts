import fs from "node:fs";
import { NR, O, sys, rawSyscall } from "../kernel/sys.js";
import { FerryError } from "../errors.js";
import type { DumpFdContext, FileKind, RestoreFileContext } from "./kind.js";
import type { FileObjectImage } from "../images/types.js";
import { setStatusFlags } from "./util.js";

const F_SETPIPE_SZ = 1031;
const F_GETPIPE_SZ = 1032;
const SPLICE_F_NONBLOCK = 2;
const MAX_PIPE = 1 << 20; // pipe-max-size: without CAP_SYS_RESOURCE no pipe grows past it

/**
 * Copy what a pipe holds without taking it out: open a new read end through /proc, then tee(2)
 * everything into a pipe of ours that is large enough, and read that.
 */
function peekPipe(c: DumpFdContext): Buffer {
  const reader = fs.openSync(`/proc/${c.pid}/fd/${c.fd}`, O.RDONLY | O.NONBLOCK);
  const fds = new Int32Array(2);
  sys("pipe2", NR.pipe2, fds, O.NONBLOCK | O.CLOEXEC);
  try {
    sys("fcntl(F_SETPIPE_SZ)", NR.fcntl, fds[0], F_SETPIPE_SZ, MAX_PIPE);
    const r = rawSyscall(NR.tee, reader, fds[1], MAX_PIPE, SPLICE_F_NONBLOCK);
    if (r === -11n) return Buffer.alloc(0); // EAGAIN: empty
    if (r < 0n) throw new FerryError("FERRY_DUMP_FILE", `${c.where}: cannot copy pipe data (errno ${-r})`);
    const out = Buffer.alloc(Number(r));
    let off = 0;
    while (off < out.length) off += fs.readSync(fds[0], out, off, out.length - off, null);
    return out;
  } finally {
    fs.closeSync(reader);
    fs.closeSync(fds[0]);
    fs.closeSync(fds[1]);
  }
}

function dumpPipeLike(c: DumpFdContext): Partial<FileObjectImage> {
  const key = `pipe-data:${c.stat.ino}`;
  const first = !c.shared.has(key);
  c.shared.set(key, true);
  return {
    inode: c.stat.ino,
    pipeSize: sys("fcntl(F_GETPIPE_SZ)", NR.fcntl, c.localFd, F_GETPIPE_SZ),
    pipeWriteEnd: ((Number(c.fdinfo.flags ?? "0") & O.ACCMODE) !== O.RDONLY),
    data: first ? peekPipe(c) : Buffer.alloc(0),
  };
}

function fill(fd: number, obj: FileObjectImage): void {
  if (obj.pipeSize) sys("fcntl(F_SETPIPE_SZ)", NR.fcntl, fd, F_SETPIPE_SZ, Math.max(obj.pipeSize, obj.data.length));
  let off = 0;
  while (off < obj.data.length) off += fs.writeSync(fd, obj.data, off, obj.data.length - off);
}

interface PipePair { r: number; w: number }

/** Anonymous pipes: both ends come from one pipe2() call, its buffered data is written back once. */
export const pipe: FileKind = {
  kind: "pipe",
  matches: (c) => c.stat.isFIFO() && c.link.startsWith("pipe:"),
  dump: dumpPipeLike,
  open(obj, ctx) {
    const pair = pipePair(obj, ctx);
    if (obj.data.length) fill(pair.w, obj);
    const end = obj.pipeWriteEnd ? pair.w : pair.r;
    setStatusFlags(end, obj.flags);
    return sys("dup", NR.dup, end); // the engine closes it; the pair lives until cleanup
  },
};

function pipePair(obj: FileObjectImage, ctx: RestoreFileContext): PipePair {
  const key = `pipe:${obj.inode}`;
  let pair = ctx.shared.get(key) as PipePair | undefined;
  if (!pair) {
    const fds = new Int32Array(2);
    sys("pipe2", NR.pipe2, fds, O.CLOEXEC);
    pair = { r: fds[0], w: fds[1] };
    const p = pair;
    ctx.shared.set(key, pair);
    ctx.cleanup.push(() => {
      fs.closeSync(p.r);
      fs.closeSync(p.w);
    });
  }
  return pair;
}

/** Named pipes: reopened by path; data goes in through a helper end opened read-write. */
export const fifo: FileKind = {
  kind: "fifo",
  matches: (c) => c.stat.isFIFO() && c.link.startsWith("/"),
  dump: (c) => ({ ...dumpPipeLike(c), path: c.link }),
  open(obj, ctx) {
    const key = `fifo:${obj.path}`;
    let helper = ctx.shared.get(key) as number | undefined;
    if (helper === undefined) {
      try {
        helper = fs.openSync(obj.path, O.RDWR | O.NONBLOCK);
      } catch (e) {
        throw new FerryError("FERRY_FILE", `cannot reopen FIFO ${obj.path}: ${(e as NodeJS.ErrnoException).code}`);
      }
      const h = helper;
      ctx.shared.set(key, helper);
      ctx.cleanup.push(() => fs.closeSync(h));
    }
    if (obj.data.length) fill(helper, obj);
    return fs.openSync(obj.path, obj.flags & ~(O.CREAT | O.EXCL | O.TRUNC));
  },
};
