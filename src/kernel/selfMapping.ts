import { NR, MAP, PROT, PAGE_SIZE, sys } from "./sys.js";
import { vmRead, vmWrite } from "./mem.js";

/**
 * A page-aligned anonymous mapping in ferry's own address space, for probes and tests that need
 * memory the kernel treats as ordinary user memory (a Buffer's backing store is not page aligned
 * and cannot be unmapped). JS cannot point a Buffer at it, so it is read and written with
 * process_vm_readv/writev on ourselves — which also means a read of a page registered with a
 * userfaultfd goes through the fault path like any access would.
 */
export class SelfMapping {
  readonly addr: number;
  private mapped = true;

  constructor(readonly len: number, opts: { shared?: boolean } = {}) {
    const flags = (opts.shared ? MAP.SHARED : MAP.PRIVATE) | MAP.ANONYMOUS;
    this.addr = sys("mmap", NR.mmap, 0, len, PROT.READ | PROT.WRITE, flags, -1, 0);
  }

  static pages(n: number, opts: { shared?: boolean } = {}): SelfMapping {
    return new SelfMapping(n * PAGE_SIZE, opts);
  }

  /** Address of page `i` of the mapping. */
  page(i: number): number {
    return this.addr + i * PAGE_SIZE;
  }

  read(off: number, len: number): Buffer {
    const b = Buffer.alloc(len);
    const n = vmRead(process.pid, b, [{ addr: this.addr + off, len }]);
    return b.subarray(0, n);
  }

  write(off: number, data: Buffer): void {
    vmWrite(process.pid, data, [{ addr: this.addr + off, len: data.length }]);
  }

  unmap(): void {
    if (!this.mapped) return;
    this.mapped = false;
    sys("munmap", NR.munmap, this.addr, this.len);
  }
}
