import fs from "node:fs";
import { FerryError } from "../errors.js";
import { NR, O, sys, rawSyscall, cstring } from "../kernel/sys.js";
import type { DumpFdContext, FileKind } from "./kind.js";
import type { InotifyWatchImage } from "../images/types.js";
import { setStatusFlags } from "./util.js";

/** The mount point of the filesystem with this device number (as fdinfo prints s_dev). */
function mountPointOf(sdev: number): string {
  const major = sdev >>> 20, minor = sdev & 0xfffff;
  for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const f = line.split(" ");
    if (f[2] === `${major}:${minor}`) return f[4];
  }
  throw new FerryError("FERRY_INOTIFY", `no mount of device ${major}:${minor} for an inotify watch`);
}

/** The path of a watched inode, from the file handle the kernel shows in fdinfo. */
function resolveHandle(c: DumpFdContext, line: Record<string, string>): string {
  const mount = fs.openSync(mountPointOf(parseInt(line.sdev, 16)), O.RDONLY | O.DIRECTORY);
  try {
    const bytes = Buffer.from(line.f_handle, "hex");
    const handle = Buffer.alloc(8 + bytes.length);
    handle.writeUInt32LE(bytes.length, 0);
    handle.writeInt32LE(Number(line["fhandle-type"]), 4);
    bytes.copy(handle, 8);
    const r = rawSyscall(NR.open_by_handle_at, mount, handle, O.PATH | O.CLOEXEC);
    if (r < 0n) throw new FerryError("FERRY_INOTIFY", `${c.where}: the file behind inotify watch ${line.wd} is gone (errno ${-r})`);
    try {
      return fs.readlinkSync(`/proc/self/fd/${r}`);
    } finally {
      fs.closeSync(Number(r));
    }
  } finally {
    fs.closeSync(mount);
  }
}

function parseWatches(c: DumpFdContext): InotifyWatchImage[] {
  const out: InotifyWatchImage[] = [];
  for (const text of c.fdinfo.__raw.split("\n")) {
    if (!text.startsWith("inotify ")) continue;
    const line: Record<string, string> = {};
    for (const kv of text.slice(8).trim().split(/\s+/)) {
      const i = kv.indexOf(":");
      line[kv.slice(0, i)] = kv.slice(i + 1);
    }
    out.push({ wd: Number(line.wd), mask: parseInt(line.mask, 16), path: resolveHandle(c, line) });
  }
  return out.sort((a, b) => a.wd - b.wd);
}

/**
 * inotify: a new instance gets the same watches with the same watch descriptors. wds are handed
 * out cyclically, so a number below the next one is reached by adding and removing a throwaway
 * watch. Events queued and not read yet are not carried over.
 */
export const inotify: FileKind = {
  kind: "inotify",
  matches: (c) => c.link === "anon_inode:inotify",
  dump: (c) => ({ watches: parseWatches(c) }),
  open(obj) {
    const fd = sys("inotify_init1", NR.inotify_init1, O.NONBLOCK | O.CLOEXEC);
    try {
      for (const w of obj.watches ?? []) {
        for (let spins = 0; ; spins++) {
          const wd = sys(`inotify_add_watch(${w.path})`, NR.inotify_add_watch, fd, cstring(w.path), w.mask);
          if (wd === w.wd) break;
          if (wd > w.wd || spins > 1 << 16) {
            throw new FerryError("FERRY_INOTIFY", `inotify watch on ${w.path} came back as ${wd}, not ${w.wd}`);
          }
          sys("inotify_rm_watch", NR.inotify_rm_watch, fd, wd); // burn a number: they are cyclic
        }
      }
      // Each burnt number left an IN_IGNORED event: the process must not read them.
      const sink = Buffer.alloc(65536);
      while (rawSyscall(NR.read, fd, sink, sink.length) > 0n);
      setStatusFlags(fd, obj.flags & O.NONBLOCK);
      return fd;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  },
};
