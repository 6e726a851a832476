import { PAGE_SIZE } from "../kernel/sys.js";
import { vmRead } from "../kernel/mem.js";
import { FerryError } from "../errors.js";
import type { Control } from "./control.js";
import { MAX_PAGES, MCMD, bitmapBytes } from "./protocol.js";
import type { Range } from "./dirtyTracker.js";

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);

/**
 * Read `ranges` of a process's memory and send them as PAGES frames of up to 1 MiB: a bitmap of
 * the zero pages (never sent as data), then the data of the others (compressed when the control
 * connection's compressor says it pays). `onPage` sees every page sent. Returns the bytes put on
 * the connection.
 */
export async function sendPages(control: Control, pid: number, ranges: Range[], onPage: (addr: number) => void): Promise<number> {
  let bytes = 0;
  const data = Buffer.allocUnsafe(MAX_PAGES * PAGE_SIZE);
  for (const r of ranges) {
    for (let addr = r.start; addr < r.end; addr += MAX_PAGES * PAGE_SIZE) {
      const n = Math.min(MAX_PAGES, (r.end - addr) / PAGE_SIZE);
      const got = vmRead(pid, data, [{ addr, len: n * PAGE_SIZE }]);
      if (got < n * PAGE_SIZE) throw new FerryError("FERRY_SOURCE_MEMORY", `cannot read process ${pid}'s pages at 0x${addr.toString(16)}`);
      const bm = bitmapBytes(n);
      const payload = Buffer.alloc(bm + n * PAGE_SIZE);
      let out = bm;
      for (let k = 0; k < n; k++) {
        const at = k * PAGE_SIZE;
        if (data.compare(ZERO_PAGE, 0, PAGE_SIZE, at, at + PAGE_SIZE) === 0) payload[k >> 3] |= 1 << (k & 7);
        else {
          data.copy(payload, out, at, at + PAGE_SIZE);
          out += PAGE_SIZE;
        }
        onPage(addr + at);
      }
      bytes += 32 + await control.sendData(MCMD.PAGES, payload.subarray(0, out), { vaddr: addr, nrPages: n }, bm);
    }
  }
  return bytes;
}
