import fs from "node:fs";
import { FerryError } from "../errors.js";
import { native } from "../kernel/native.js";
import { setSigmask } from "../kernel/ptrace.js";
import { readVmas } from "../kernel/procfs.js";
import { Injector } from "../kernel/inject.js";
import { UFFD_FEATURE, UFFDIO_REGISTER_MODE, readUffdMsgs, uffdRegister, uffdWriteProtect } from "../kernel/uffd.js";
import { PAGE_IS, PM_SCAN, pagemapScanAll, type PageRegion } from "../kernel/pagemapScan.js";
import { freezeTree, release } from "../dump/tree.js";
import { describeVma } from "../dump/mm.js";
import { isLazyVma } from "../lazy/plan.js";
import { supportedUffdFeatures, takeUffdFromInside } from "../lazy/attach.js";

export interface Range { start: number; end: number }

const TRACKING = UFFD_FEATURE.WP_ASYNC | UFFD_FEATURE.WP_UNPOPULATED;
/** Events that change what a sent page means: the process zapped, unmapped or moved memory. */
const EVENTS = UFFD_FEATURE.EVENT_REMAP | UFFD_FEATURE.EVENT_REMOVE | UFFD_FEATURE.EVENT_UNMAP;
const UV_READABLE = 1;

/**
 * Exact dirty tracking of a running process's private anonymous memory, without soft-dirty
 * (DESIGN.md section 6): a userfaultfd made inside the process (injected userfaultfd(), taken
 * with pidfd_getfd) in asynchronous write-protect mode. The kernel resolves write faults itself
 * and clears the page's protection; PAGEMAP_SCAN lists the written pages and protects them again
 * in the same call. Memory zapped, unmapped or moved meanwhile is reported by events (the
 * process waits until ferry reads them) and marked tainted: what was sent of it is stale.
 */
export class DirtyTracker {
  readonly ranges: Range[] = [];
  readonly tainted: Range[] = [];
  private poll: object | null = null;
  private closed = false;

  private constructor(readonly pid: number, private readonly uffd: number, private readonly pagemap: number) {}

  static attach(pid: number): DirtyTracker {
    const missing = (TRACKING | EVENTS) & ~supportedUffdFeatures();
    if (missing) throw new FerryError("FERRY_UFFD_FEATURES", `this kernel's userfaultfd lacks write-protect tracking (features 0x${missing.toString(16)}): use --mode lazy or stop-copy`);
    const tree = freezeTree(pid);
    let uffd: number;
    try {
      for (const t of tree[0].threads) setSigmask(t.tid, ~0n); // nothing delivered while ferry runs a call inside
      uffd = takeUffdFromInside(Injector.forTask(pid), TRACKING | EVENTS);
    } finally {
      for (const p of tree) release(p);
    }
    const pagemap = fs.openSync(`/proc/${pid}/pagemap`, "r");
    const t = new DirtyTracker(pid, uffd, pagemap);
    t.poll = native.pollStart(uffd, UV_READABLE, () => t.drainEvents());
    return t;
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
    return this.scan(r, { categoryAnyof: PAGE_IS.PRESENT | PAGE_IS.SWAPPED, categoryMask: PAGE_IS.PFNZERO, categoryInvertedMask: PAGE_IS.PFNZERO, returnMask: PAGE_IS.PRESENT });
  }

  /** Pages written since they were last protected; `rearm` protects them again in the same pass. */
  dirty(rearm: boolean): Range[] {
    this.drainEvents();
    const out: Range[] = [];
    for (const r of this.ranges) {
      out.push(...this.scan(r, { categoryMask: PAGE_IS.WRITTEN, returnMask: PAGE_IS.WRITTEN, flags: rearm ? PM_SCAN.WP_MATCHING : 0 }));
    }
    return out;
  }

  /** Categories (PRESENT, SWAPPED, WRITTEN, PFNZERO) of every page of the tracked ranges. */
  categories(): PageRegion[] {
    this.drainEvents();
    const out: PageRegion[] = [];
    const mask = PAGE_IS.PRESENT | PAGE_IS.SWAPPED | PAGE_IS.WRITTEN | PAGE_IS.PFNZERO;
    for (const r of this.ranges) {
      try {
        out.push(...pagemapScanAll(this.pagemap, r.start, r.end, { categoryAnyof: mask, returnMask: mask, maxRegions: 4096 }));
      } catch { /* unmapped meanwhile (an event says so) */ }
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
      return []; // the mapping went away: the UNMAP event taints it
    }
  }

  private drainEvents(): void {
    let msgs;
    try {
      msgs = readUffdMsgs(this.uffd);
    } catch {
      return;
    }
    for (const m of msgs) {
      if (m.event === "remove" || m.event === "unmap") this.tainted.push({ start: m.start, end: m.end });
      else if (m.event === "remap") this.tainted.push({ start: m.from, end: m.from + m.len }, { start: m.to, end: m.to + m.len });
    }
  }

  /** Stop tracking: the kernel drops the registrations and protections with the last fd. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.poll) native.pollStop(this.poll);
    this.poll = null;
    fs.closeSync(this.uffd);
    fs.closeSync(this.pagemap);
  }
}
