import fs from "node:fs";
import { FerryError } from "../errors.js";
import { crc32, writeImageFile, type ImageDir } from "../images/store.js";
import type { FileObjectImage } from "../images/types.js";

/** Content up to this size rides in the metadata; larger goes to its own blob file. */
const INLINE_MAX = 64 << 10;

export function readAll(fd: number, size: number): Buffer {
  const out = Buffer.alloc(size);
  let off = 0;
  while (off < size) {
    const n = fs.readSync(fd, out, off, size - off, off);
    if (n === 0) break;
    off += n;
  }
  return out.subarray(0, off);
}

export function writeBlob(images: ImageDir, name: string, data: Buffer): Partial<FileObjectImage> {
  if (data.length <= INLINE_MAX) return { data, blobCrc32: crc32(data) };
  const blob = `blob-${name}.img`;
  writeImageFile(images.path(blob), data);
  return { blob, blobCrc32: crc32(data), size: data.length };
}

export function readBlob(images: ImageDir, obj: FileObjectImage): Buffer {
  const data = obj.blob ? fs.readFileSync(images.path(obj.blob)) : obj.data;
  if (crc32(data) !== obj.blobCrc32) {
    throw new FerryError("FERRY_IMAGE_CORRUPT", `${obj.blob ? images.path(obj.blob) : "files.img"}: checksum mismatch in the content of ${obj.path || obj.kind} (${obj.blob ? "the whole file, from offset 0" : "inline data"})`);
  }
  return data;
}
