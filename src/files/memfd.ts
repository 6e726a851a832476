import fs from "node:fs";
import { NR, O, MAP, sys, rawSyscall, cstring, SyscallError } from "../kernel/sys.js";
import type { Injector } from "../kernel/inject.js";
import { FerryError } from "../errors.js";
import type { FileObjectImage, Inventory, MmImage, VmaImage } from "../images/types.js";
import { adviseVma, checkLanded } from "../restore/mm.js";
import type { DumpFdContext, FileKind, RestoreFileContext } from "./kind.js";
import { writeBlob, readBlob } from "./content.js";
import { withStatusFlags } from "./util.js";

const F_ADD_SEALS = 1033, F_GET_SEALS = 1034, F_SEAL_SEAL = 1;
const MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2;
const SEEK_DATA = 3, SEEK_HOLE = 4;
const ENXIO = 6n;
const HUGETLBFS_MAGIC = 0x958458f6;
const PREFIX = "/memfd:", DELETED = " (deleted)";

/**
 * The content, holes left out: u32 count, count × (u64 offset, u64 length), then the bytes of
 * every extent in order. SEEK_DATA/SEEK_HOLE find the extents on a read-only open of our own (the
 * target's open file description keeps its offset).
 */
function dumpContent(c: DumpFdContext): Buffer {
  const reader = fs.openSync(`/proc/self/fd/${c.localFd}`, O.RDONLY | O.CLOEXEC);
  try {
    const extents: [number, number][] = [];
    let off = 0;
    while (off < c.stat.size) {
      const data = rawSyscall(NR.lseek, reader, off, SEEK_DATA);
      if (data === -ENXIO) break; // only a hole is left
      if (data < 0n) throw new SyscallError(`lseek(SEEK_DATA) on ${c.link}`, Number(-data));
      const start = Number(data);
      const end = Math.min(c.stat.size, sys("lseek(SEEK_HOLE)", NR.lseek, reader, start, SEEK_HOLE));
      extents.push([start, end - start]);
      off = end;
    }
    const header = Buffer.alloc(4 + 16 * extents.length);
    header.writeUInt32LE(extents.length, 0);
    const bodies = extents.map(([start, len], i) => {
      header.writeBigUInt64LE(BigInt(start), 4 + 16 * i);
      header.writeBigUInt64LE(BigInt(len), 12 + 16 * i);
      const body = Buffer.alloc(len);
      for (let got = 0; got < len;) {
        const n = fs.readSync(reader, body, got, len - got, start + got);
        if (n === 0) throw new FerryError("FERRY_DUMP_FILE", `${c.where}: ${c.link} shrank while ferry read it`);
        got += n;
      }
      return body;
    });
    return Buffer.concat([header, ...bodies]);
  } finally {
    fs.closeSync(reader);
  }
}

function writeContent(fd: number, content: Buffer, obj: FileObjectImage): void {
  const corrupt = () => new FerryError("FERRY_IMAGE_CORRUPT", `files.img: the content of memfd ${obj.name} is malformed`);
  if (content.length < 4) throw corrupt();
  const count = content.readUInt32LE(0);
  let body = 4 + 16 * count;
  if (body > content.length) throw corrupt();
  for (let i = 0; i < count; i++) {
    const start = Number(content.readBigUInt64LE(4 + 16 * i));
    const len = Number(content.readBigUInt64LE(12 + 16 * i));
    if (body + len > content.length || start + len > obj.size) throw corrupt();
    for (let done = 0; done < len;) done += fs.writeSync(fd, content, body + done, len - done, start + done);
    body += len;
  }
}

/** One memfd object, shared by every open file description of it. */
interface MemfdObject {
  /** ferry's fd of it, open until the restore is over */
  fd: number;
  /** seals still to add: they wait until the object is mapped (F_SEAL_FUTURE_WRITE forbids that) */
  seals: number;
  /** processes whose MAP_SHARED mappings of it are still to be pointed at it */
  unmapped: Set<number>;
}

/** Shared mappings of memfds in the images, by inode (the same inode number as the FileObject's). */
function sharedMappings(ctx: RestoreFileContext): Map<number, { pid: number; vma: VmaImage }[]> {
  const key = "memfd:mappings";
  let byInode = ctx.shared.get(key) as Map<number, { pid: number; vma: VmaImage }[]> | undefined;
  if (byInode) return byInode;
  byInode = new Map();
  const inventory = ctx.images.read<Inventory>("inventory.img", "Inventory");
  for (const pid of inventory.pids.length ? inventory.pids : [inventory.rootPid]) {
    const mm = ctx.images.read<MmImage>(`mm-${pid}.img`, "Mm");
    for (const vma of mm.vmas) {
      if (vma.kind !== "memfd" || !vma.shared || !vma.inode) continue;
      byInode.set(vma.inode, [...(byInode.get(vma.inode) ?? []), { pid, vma }]);
    }
  }
  ctx.shared.set(key, byInode);
  return byInode;
}

function addSeals(m: MemfdObject, name: string): void {
  if (m.seals) sys(`fcntl(F_ADD_SEALS) on memfd ${name}`, NR.fcntl, m.fd, F_ADD_SEALS, m.seals);
  m.seals = 0;
}

function createObject(obj: FileObjectImage, ctx: RestoreFileContext): MemfdObject {
  // A memfd made without MFD_ALLOW_SEALING reads as sealed with F_SEAL_SEAL alone.
  const sealable = obj.seals !== F_SEAL_SEAL;
  const fd = sys(`memfd_create(${obj.name})`, NR.memfd_create, cstring(obj.name), MFD_CLOEXEC | (sealable ? MFD_ALLOW_SEALING : 0));
  const mappedBy = (sharedMappings(ctx).get(obj.inode) ?? []).map((x) => x.pid);
  const m: MemfdObject = { fd, seals: sealable ? obj.seals : 0, unmapped: new Set(mappedBy) };
  try {
    fs.fchmodSync(fd, obj.mode & 0o7777);
    sys("ftruncate", NR.ftruncate, fd, obj.size);
    writeContent(fd, readBlob(ctx.images, obj), obj);
    if (!m.unmapped.size) addSeals(m, obj.name);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  ctx.cleanup.push(() => {
    try {
      addSeals(m, obj.name); // a mapping process finish() never ran in (it has no fd at all)
    } catch { /* the processes may run already: a late error would only hide that they do */ }
    fs.closeSync(fd);
  });
  return m;
}

/**
 * memfd: name, size, mode, content without its holes, seals (added after the content), status
 * flags and offset (the engine seeks). Every open file description of one memfd reopens the same
 * restored object, and finish() maps that very object where each process had it mapped MAP_SHARED
 * (the mapping restore made a memfd of its own for it first), so writes through the fd and the
 * mapping keep meeting. Seals wait for those mappings (a writable shared mapping may predate
 * F_SEAL_FUTURE_WRITE, which forbids making it anew); a mapping process without any fd gets no
 * finish() call, its mapping stays a copy and the seals come at the end of the restore.
 * Not restored: MAP_PRIVATE mappings keep a copy of their own (they see their pages as dumped, not
 * later writes to the memfd); hugetlb memfds (MFD_HUGETLB) are refused at dump.
 */
export const memfd: FileKind = {
  kind: "memfd",
  matches: (c) => c.stat.isFile() && c.link.startsWith(PREFIX),
  dump(c) {
    if (fs.statfsSync(`/proc/${c.pid}/fd/${c.fd}`).type === HUGETLBFS_MAGIC) {
      throw new FerryError("FERRY_UNSUPPORTED", `${c.where}: ${c.link} is a hugetlb memfd, not supported yet`);
    }
    const name = c.link.slice(PREFIX.length, c.link.endsWith(DELETED) ? -DELETED.length : undefined);
    const obj: Partial<FileObjectImage> = {
      name, inode: c.stat.ino, mode: c.stat.mode, size: c.stat.size,
      seals: sys(`fcntl(F_GET_SEALS) on ${c.where}`, NR.fcntl, c.localFd, F_GET_SEALS),
    };
    // Another open file description of the same memfd carries the content already.
    const key = `memfd-content:${c.stat.ino}`;
    if (c.shared.has(key)) return obj;
    c.shared.set(key, true);
    return { ...obj, ...writeBlob(c.images, `memfd-${c.pid}-${c.fd}`, dumpContent(c)), size: c.stat.size };
  },
  open(obj, ctx) {
    const key = `memfd:${obj.inode}`;
    let m = ctx.shared.get(key) as MemfdObject | undefined;
    if (!m) {
      m = createObject(obj, ctx);
      ctx.shared.set(key, m);
    }
    // Each open file description is its own open of the object, with its own access mode.
    const fd = fs.openSync(`/proc/self/fd/${m.fd}`, (obj.flags & O.ACCMODE) | O.CLOEXEC);
    return withStatusFlags(fd, obj.flags);
  },
  finish(obj, inj, _targetFds, ctx) {
    const m = ctx.shared.get(`memfd:${obj.inode}`) as MemfdObject | undefined;
    if (!m?.unmapped.delete(inj.pid)) return;
    const vmas = (sharedMappings(ctx).get(obj.inode) ?? []).filter((x) => x.pid === inj.pid).map((x) => x.vma);
    mapObject(inj, m.fd, vmas);
    if (!m.unmapped.size) addSeals(m, obj.name);
  },
};

/**
 * Replace the target's shared mappings of the memfd by mappings of the restored object, which the
 * target takes from ferry itself (it may have no fd of its own of it, only the mapping).
 */
function mapObject(inj: Injector, ferryFd: number, vmas: VmaImage[]): void {
  const pidfd = inj.ok("pidfd_open(ferry)", NR.pidfd_open, process.pid, 0);
  let rw: number;
  try {
    rw = inj.ok("pidfd_getfd(memfd)", NR.pidfd_getfd, pidfd, ferryFd, 0);
  } finally {
    inj.ok("close", NR.close, pidfd);
  }
  try {
    const b = inj.batch();
    const landed = vmas.map((v) => {
      const i = b.add(`mmap 0x${v.start.toString(16)} ${v.path}`, NR.mmap, v.start, v.end - v.start, v.prot, MAP.SHARED | MAP.FIXED, rw, v.pgoff);
      adviseVma(b, v);
      return { v, i };
    });
    b.run();
    checkLanded(b, landed, "memfd mapping");
  } finally {
    inj.ok("close", NR.close, rw);
  }
}
