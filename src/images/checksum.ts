import zlib from "node:zlib";
import { native } from "../kernel/native.js";

/** The checksum of every image chunk: zlib's CRC-32. */
export function crc32(data: Buffer | Uint8Array, seed = 0): number {
  return zlib.crc32(data, seed) >>> 0;
}

/** The same CRC of `length` bytes at an address of ours (a window of a file ferry mapped). */
export function crc32At(address: bigint | number, length: number): number {
  return crc32(new Uint8Array(native.memoryView(address, length)));
}
