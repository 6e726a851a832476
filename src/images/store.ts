import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";
import { FerryError } from "../errors.js";
import { crc32 } from "./checksum.js";

/** The on-disk format version; readers refuse others with a clear message. */
export const FORMAT_VERSION = 1;
const MAGIC = Buffer.from("FERRYIMG");
const HEADER = 20;

const schemaDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "schema");
const root = protobuf.loadSync(path.join(schemaDir, "ferry.proto"));

export type MessageName =
  | "Inventory" | "Core" | "Mm" | "PageMap" | "FdTable" | "Files";

function type(name: MessageName): protobuf.Type {
  return root.lookupType(`ferry.${name}`);
}

/**
 * protobufjs writes each message type's encoder, decoder and converters on first use, and that
 * costs about 90 ms for the whole schema: pay it now, before a freeze, rather than while a
 * process is stopped (dump) or waits for its restore (the agent of a migration).
 */
export function warmImageCodecs(): void {
  if (warmed) return;
  warmed = true;
  const visit = (ns: protobuf.NamespaceBase): void => {
    for (const n of ns.nestedArray) {
      if (n instanceof protobuf.Type) {
        n.verify({});
        n.toObject(n.decode(n.encode(n.fromObject({})).finish()), { longs: Number, defaults: true, arrays: true });
      }
      if (n instanceof protobuf.Namespace) visit(n);
    }
  };
  visit(root);
}
let warmed = false;

export { crc32, crc32At } from "./checksum.js";

/** Image files hold memory: only their owner may read them. */
export const IMAGE_MODE = 0o600;

/**
 * Open an image file for writing, mode 0600 whatever the umask, and also when a file of that
 * name was already there with looser modes (open's mode only applies to new files).
 */
export function createImageFile(file: string): number {
  const fd = fs.openSync(file, "w", IMAGE_MODE);
  fs.fchmodSync(fd, IMAGE_MODE);
  return fd;
}

/** A whole image file at once, mode 0600 (see createImageFile). */
export function writeImageFile(file: string, data: Buffer): void {
  const fd = createImageFile(file);
  try {
    fs.writeFileSync(fd, data);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A directory of images. Metadata files are framed protobuf messages (magic, version,
 * checksum); page data and large blobs are raw files indexed from the metadata.
 */
export class ImageDir {
  /** decoded images by file name, when this directory's reads are shared (see shared()) */
  private memo: Map<string, unknown> | null = null;

  constructor(readonly dir: string) {}

  /**
   * A directory whose reads decode each file once, for two readers of the same images (the
   * lazy-pages daemon and the restore, while the process waits): they must not change what they read.
   */
  static shared(dir: string): ImageDir {
    const d = new ImageDir(dir);
    d.memo = new Map();
    return d;
  }

  static create(dir: string): ImageDir {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (fs.statSync(dir).mode & 0o077 && fs.readdirSync(dir).length === 0) fs.chmodSync(dir, 0o700); // made by the caller, empty: ours now
    return new ImageDir(dir);
  }

  path(name: string): string {
    return path.join(this.dir, name);
  }

  write(name: string, msgName: MessageName, obj: object): void {
    const t = type(msgName);
    const err = t.verify(obj);
    if (err) throw new FerryError("FERRY_IMAGE_SCHEMA", `internal: ${name}: ${err}`);
    const payload = Buffer.from(t.encode(t.fromObject(obj)).finish());
    const header = Buffer.alloc(HEADER);
    MAGIC.copy(header, 0);
    header.writeUInt32LE(FORMAT_VERSION, 8);
    header.writeUInt32LE(crc32(payload), 12);
    header.writeUInt32LE(payload.length, 16);
    writeImageFile(this.path(name), Buffer.concat([header, payload]));
    this.memo?.delete(name);
  }

  exists(name: string): boolean {
    return fs.existsSync(this.path(name));
  }

  read<T>(name: string, msgName: MessageName): T {
    if (this.memo?.has(name)) return this.memo.get(name) as T;
    const file = this.path(name);
    let buf: Buffer;
    try {
      buf = fs.readFileSync(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new FerryError("FERRY_IMAGE_MISSING", `${file}: ${code === "ENOENT" ? "missing" : code}: is ${this.dir} a ferry image directory?`);
    }
    const decoded = decodeFramed<T>(buf, file, msgName);
    this.memo?.set(name, decoded);
    return decoded;
  }
}

/** Parse one framed message; every malformed input gives a FerryError naming the file. */
export function decodeFramed<T>(buf: Buffer, file: string, msgName: MessageName): T {
  if (buf.length < HEADER || !buf.subarray(0, 8).equals(MAGIC)) {
    throw new FerryError("FERRY_IMAGE_FOREIGN", `${file}: not a ferry image (no FERRYIMG magic at offset 0)`);
  }
  const version = buf.readUInt32LE(8);
  if (version !== FORMAT_VERSION) {
    throw new FerryError("FERRY_IMAGE_VERSION", `${file}: image format version ${version}, this ferry reads version ${FORMAT_VERSION} (at offset 8)`);
  }
  const len = buf.readUInt32LE(16);
  if (len !== buf.length - HEADER) {
    throw new FerryError("FERRY_IMAGE_CORRUPT", `${file}: truncated or padded (the length at offset 16 says ${len} bytes, ${buf.length - HEADER} follow the header)`);
  }
  const payload = buf.subarray(HEADER);
  if (crc32(payload) !== buf.readUInt32LE(12)) {
    throw new FerryError("FERRY_IMAGE_CORRUPT", `${file}: checksum mismatch in metadata at offset ${HEADER}`);
  }
  const reader = protobuf.Reader.create(payload);
  try {
    const t = type(msgName);
    return t.toObject(t.decode(reader), { longs: Number, defaults: true, arrays: true }) as T;
  } catch (e) {
    throw new FerryError("FERRY_IMAGE_CORRUPT", `${file}: cannot decode ${msgName} at offset ${HEADER + reader.pos}: ${(e as Error).message}`);
  }
}

export function toJSONValue(msgName: MessageName, obj: object): unknown {
  const t = type(msgName);
  return t.toObject(t.fromObject(obj), { longs: String, bytes: String, defaults: false, arrays: true });
}
