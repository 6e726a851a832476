import { PAGE_SIZE } from "../kernel/sys.js";
import { vmRead } from "../kernel/mem.js";
import { FerryError } from "../errors.js";
import type { Control } from "./control.js";
import { MAX_PAGES, MCMD, bitmapBytes } from "./protocol.js";
import { packPages } from "../lazy/protocol.js";
import type { Range } from "./dirtyTracker.js";

/**
 * Read `ranges` of a process's memory and send them as PAGES frames of up to 1 MiB: a bitmap of
 * the zero pages (never sent as data), then the data of the others (compressed when the control
 * connection's compressor says it pays). `onPage` sees every page sent. Returns the bytes put on
 * the connection.
 */
export async function sendPages(control: Control, pid: number, ranges: Range[], onPage: (addr: number) => void): Promise<number> {
  let bytes = 0;
  for (const { addr, n, payload } of pageFrames(pid, ranges)) {
    for (let k = 0; k < n; k++) onPage(addr + k * PAGE_SIZE);
    bytes += 32 + await control.sendData(MCMD.PAGES, payload, { vaddr: addr, nrPages: n }, bitmapBytes(n));
  }
  return bytes;
}

/** `ranges` of a process's memory read as PAGES payloads of up to MAX_PAGES pages each (packPages). */
export function* pageFrames(pid: number, ranges: Range[]): Generator<{ addr: number; n: number; payload: Buffer }> {
  for (const r of ranges) {
    for (let addr = r.start; addr < r.end; addr += MAX_PAGES * PAGE_SIZE) {
      const n = Math.min(MAX_PAGES, (r.end - addr) / PAGE_SIZE);
      const bm = bitmapBytes(n);
      const payload = Buffer.allocUnsafe(bm + n * PAGE_SIZE);
      const got = vmRead(pid, payload.subarray(bm), [{ addr, len: n * PAGE_SIZE }]);
      if (got < n * PAGE_SIZE) throw new FerryError("FERRY_SOURCE_MEMORY", `cannot read process ${pid}'s pages at 0x${addr.toString(16)}`);
      yield { addr, n, payload: payload.subarray(0, packPages(payload, n)) };
    }
  }
}
