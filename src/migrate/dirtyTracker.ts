import fs from "node:fs";
import { FerryError } from "../errors.js";
import { setSigmask } from "../kernel/ptrace.js";
import { readVmas } from "../kernel/procfs.js";
import { Injector } from "../kernel/inject.js";
import { UFFD_FEATURE, UFFDIO_REGISTER_MODE, uffdRegister, uffdWriteProtect } from "../kernel/uffd.js";
import { PAGE_IS, PM_SCAN, pagemapScanAll, type PageRegion } from "../kernel/pagemapScan.js";
import { freezeTree, release } from "../dump/tree.js";
import { describeVma } from "../dump/mm.js";
import { isLazyVma, presentRanges } from "../lazy/plan.js";
import { supportedUffdFeatures, takeUffdFromInside } from "../lazy/attach.js";

export interface Range { start: number; end: number }

/*
 * No non-cooperative events (REMOVE, UNMAP, REMAP): they make the process wait in munmap or
 * madvise until ferry reads them, and a process frozen by the dump while it waits would never
 * stop. What they would say shows in the page tables instead: a zapped page loses its present
 * bit (PAGEMAP_SCAN reports the protection's marker as swapped), a moved or remapped one comes
 * back unprotected (written); see precopy.ts for how each case is decided.
 */
const TRACKING = UFFD_FEATURE.WP_ASYNC | UFFD_FEATURE.WP_UNPOPULATED;

/**
 * Exact dirty tracking of a running process's private anonymous memory, without soft-dirty
 * (DESIGN.md section 6): a userfaultfd made inside the process (injected userfaultfd(), taken
 * with pidfd_getfd) in asynchronous write-protect mode. The kernel resolves write faults itself
 * and clears the page's protection; PAGEMAP_SCAN lists the written pages and protects them again
 * in the same call.
 */
export class DirtyTracker {
  readonly ranges: Range[] = [];
  private closed = false;

  private constructor(readonly pid: number, private readonly uffd: number, private readonly pagemap: number) {}

  static attach(pid: number): DirtyTracker {
    const missing = TRACKING & ~supportedUffdFeatures();
    if (missing) throw new FerryError("FERRY_UFFD_FEATURES", `this kernel's userfaultfd lacks write-protect tracking (features 0x${missing.toString(16)}): use --mode lazy or stop-copy`);
    const tree = freezeTree(pid);
    let uffd: number;
    try {
      for (const t of tree[0].threads) setSigmask(t.tid, ~0n); // nothing delivered while ferry runs a call inside
      uffd = takeUffdFromInside(Injector.forTask(pid), TRACKING);
    } finally {
      for (const p of tree) release(p);
    }
    const pagemap = fs.openSync(`/proc/${pid}/pagemap`, "r");
    return new DirtyTracker(pid, uffd, pagemap);
  }

  /** Register and write-protect the private anonymous mappings not tracked yet; returns them. */
  trackNew(): Range[] {
    const added: Range[] = [];
    for (const v of readVmas(this.pid)) {
      let lazy = false;
      try {
        lazy = isLazyVma(describeVma(v));
      } catch { /* a device mapping: not ours to track */ }
      if (!lazy || this.covered(v.start, v.end)) continue;
      try {
        uffdRegister(this.uffd, v.start, v.end - v.start, UFFDIO_REGISTER_MODE.WP);
        uffdWriteProtect(this.uffd, v.start, v.end - v.start, true);
      } catch {
        continue; // unmapped meanwhile; what is there at the end travels anyway
      }
      const r = { start: v.start, end: v.end };
      this.ranges.push(r);
      added.push(r);
    }
    this.ranges.sort((a, b) => a.start - b.start);
    return added;
  }

  /** Pages with content in `r` (present or swapped, not the shared zero page). */
  populated(r: Range): Range[] {
    try {
      return presentRanges(this.pagemap, r.start, r.end);
    } catch {
      return []; // the mapping went away
    }
  }

  /** Pages written since they were last protected; `rearm` protects them again in the same pass. */
  dirty(rearm: boolean): Range[] {
    const out: Range[] = [];
    for (const r of this.ranges) {
      out.push(...this.scan(r, { categoryMask: PAGE_IS.WRITTEN, returnMask: PAGE_IS.WRITTEN, flags: rearm ? PM_SCAN.WP_MATCHING : 0 }));
    }
    return out;
  }

  /** Categories (PRESENT, SWAPPED, WRITTEN, PFNZERO) of every page of the tracked ranges. */
  categories(): PageRegion[] {
    const out: PageRegion[] = [];
    const mask = PAGE_IS.PRESENT | PAGE_IS.SWAPPED | PAGE_IS.WRITTEN | PAGE_IS.PFNZERO;
    for (const r of this.ranges) {
      try {
        out.push(...pagemapScanAll(this.pagemap, r.start, r.end, { categoryAnyof: mask, returnMask: mask, maxRegions: 4096 }));
      } catch { /* unmapped meanwhile: the images say what is left */ }
    }
    return out;
  }

  covered(start: number, end: number): boolean {
    return this.ranges.some((r) => r.start <= start && end <= r.end);
  }

  private scan(r: Range, opts: Parameters<typeof pagemapScanAll>[3]): Range[] {
    try {
      return pagemapScanAll(this.pagemap, r.start, r.end, { maxRegions: 4096, ...opts }).map((g) => ({ start: g.start, end: g.end }));
    } catch {
      return []; // the mapping went away
    }
  }

  /**
   * Stop tracking: the kernel drops the registrations and protections with the last fd. That
   * walks every tracked page (20 ms for 1 GiB here), so it happens on libuv's thread pool, not in
   * a switch-over: the process may run meanwhile (asynchronous write-protection never blocks it).
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.close(this.uffd, () => {});
    fs.closeSync(this.pagemap);
  }
}
