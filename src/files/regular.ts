import fs from "node:fs";
import path from "node:path";
import { FerryError } from "../errors.js";
import { O } from "../kernel/sys.js";
import type { FileKind } from "./kind.js";
import { readAll, writeBlob, readBlob } from "./content.js";

const DELETED = " (deleted)";

/** Regular files and directories: reopened by path; files deleted while open carry their content. */
export const regularFile: FileKind = {
  kind: "reg",
  matches: (c) => (c.stat.isFile() || c.stat.isDirectory()) && c.link.startsWith("/") && !c.link.startsWith("/memfd:"),
  dump(c) {
    const deleted = c.link.endsWith(DELETED) && c.stat.nlink === 0;
    const obj = {
      path: deleted ? c.link.slice(0, -DELETED.length) : c.link,
      mode: c.stat.mode,
      inode: c.stat.ino,
      size: c.stat.size,
      deleted,
    };
    if (deleted) return { ...obj, ...writeBlob(c.images, `deleted-${c.pid}-${c.fd}`, readAll(c.localFd, c.stat.size)) };
    return obj;
  },
  // /proc/PID/... of a restored process (its fdinfo, maps) exists only once the process and its fds do.
  late: (obj) => !obj.deleted && obj.path.startsWith("/proc/"),
  open(obj, ctx) {
    const flags = obj.flags & ~(O.CREAT | O.EXCL | O.TRUNC | O.NOCTTY);
    if (obj.deleted) return recreateDeleted(obj.path, obj.mode, flags, readBlob(ctx.images, obj));
    let fd: number;
    try {
      fd = fs.openSync(obj.path, flags);
    } catch (e) {
      throw new FerryError("FERRY_FILE", `cannot reopen ${obj.path}: ${(e as NodeJS.ErrnoException).code}`);
    }
    const st = fs.fstatSync(fd);
    // (files of /proc have no size: their content is made as they are read)
    if (st.isFile() && st.size < obj.pos && !obj.path.startsWith("/proc/")) {
      fs.closeSync(fd);
      throw new FerryError("FERRY_FILE", `${obj.path} is now ${st.size} bytes, shorter than its dumped offset ${obj.pos}: it changed since the dump`);
    }
    return fd;
  },
};

/** A file deleted while open: write its content under its old name, open it, unlink it again. */
function recreateDeleted(file: string, mode: number, flags: number, content: Buffer): number {
  let name = file;
  if (fs.existsSync(name)) name = path.join(path.dirname(file), `.ferry-${process.pid}-${path.basename(file)}`);
  try {
    const w = fs.openSync(name, "wx", mode & 0o7777);
    fs.writeSync(w, content);
    fs.closeSync(w);
    return fs.openSync(name, flags);
  } catch (e) {
    throw new FerryError("FERRY_FILE", `cannot recreate deleted file ${file}: ${(e as NodeJS.ErrnoException).code}`);
  } finally {
    fs.rmSync(name, { force: true });
  }
}
