import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";

/** The C addon: thin syscall wrappers only (see src/native/ferry.c). */
export interface Native {
  syscall(nr: number, ...args: Arg[]): bigint;
  addressOf(buf: Buffer | ArrayBufferView): bigint;
  spawnStub(setTid: number[] | null, flags: number | bigint): number;
  pollStart(fd: number, events: number, cb: (status: number, events: number) => void): object;
  pollStop(handle: object): void;
  /** the bytes of a mapping ferry made itself (mmap through syscall), without a copy */
  memoryView(address: number | bigint, length: number): ArrayBuffer;
}
export type Arg = number | bigint | Buffer | ArrayBufferView | null | undefined | boolean;

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
// dist/src/kernel -> project root
export const native: Native = require(path.resolve(here, "../../../build/Release/ferry_native.node"));
