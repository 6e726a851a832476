import { PAGE_SIZE } from "../kernel/sys.js";
import { PAGE_IS } from "../kernel/pagemapScan.js";
import { ImageDir } from "../images/store.js";
import type { Inventory, PageMapImage } from "../images/types.js";
import type { Control } from "./control.js";
import { DirtyTracker, type Range } from "./dirtyTracker.js";
import { sendPages, toRanges } from "./pageFrames.js";
import { anotherRound, predictDowntimeMs } from "./policy.js";
import type { RestoreRequest } from "./protocol.js";
import type { Timeline } from "./timeline.js";

export interface PrecopyOptions {
  pid: number;
  control: Control;
  timeline: Timeline;
  maxDowntimeMs: number;
  maxRounds: number;
  signal?: AbortSignal;
}

export interface PrecopyResult {
  /** After the dump froze the process (lazy images in `images`): what the agent keeps, and
   *  (eager: pre-copy) the rest sent now, or (hybrid) the lazy runs cut down to it. */
  switchOver(images: string, eager: boolean): Promise<RestoreRequest>;
  transferCounts(): Map<number, number>;
  /** pages left for the lazy page server (hybrid) */
  neededPages(): number[];
  redirtiedResends: number;
  close(): void;
}

/**
 * Pre-copy rounds while the process runs: round 0 sends every populated page of its private
 * anonymous memory, each later round what was written since the previous one, as long as
 * another round pays off (policy.ts).
 */
export async function runPrecopy(o: PrecopyOptions): Promise<PrecopyResult> {
  const tracker = DirtyTracker.attach(o.pid);
  const counts = new Map<number, number>();
  let redirtied = 0;
  let needed: number[] = [];
  const onPage = (addr: number) => {
    const c = counts.get(addr) ?? 0;
    if (c) redirtied++;
    counts.set(addr, c + 1);
  };
  try {
    let lastScan = performance.now();
    let lastPages = 0;
    let bandwidth = 0;
    for (let round = 0; ; round++) {
      if (o.signal?.aborted) throw new Error("interrupted");
      let ranges: Range[];
      if (round === 0) {
        const fresh = tracker.trackNew(); // protected first: any write from now on is seen
        ranges = fresh.flatMap((r) => tracker.populated(r));
      } else {
        const peek = tracker.dirty(false);
        const dirtyPages = pagesIn(peek);
        const go = anotherRound({ dirtyPages, lastPages, bandwidth, round }, o.maxDowntimeMs, o.maxRounds);
        if (!go.go) break;
        const fresh = tracker.trackNew();
        ranges = [...tracker.dirty(true), ...fresh.flatMap((r) => tracker.populated(r))];
      }
      const scanAt = performance.now();
      const elapsed = (scanAt - lastScan) / 1000;
      lastScan = scanAt;
      const start = o.timeline.now();
      const bytes = await sendPages(o.control, o.pid, ranges, onPage);
      const secs = Math.max((o.timeline.now() - start) / 1000, 1e-4);
      const pages = pagesIn(ranges);
      bandwidth = bytes / secs;
      const dirtyRate = round === 0 ? 0 : pages / Math.max(elapsed, 1e-4);
      o.timeline.rounds.push({
        round, startMs: start, endMs: o.timeline.now(), pages, bytes, dirtyRate, bandwidth,
        predictedDowntimeMs: predictDowntimeMs(pagesIn(tracker.dirty(false)), bandwidth),
      });
      lastPages = pages;
    }
  } catch (e) {
    tracker.close();
    throw e;
  }

  return {
    get redirtiedResends() {
      return redirtied;
    },
    transferCounts: () => counts,
    neededPages: () => needed,
    close: () => tracker.close(),
    async switchOver(images: string, eager: boolean): Promise<RestoreRequest> {
      const dir = new ImageDir(images);
      const pidNs = dir.read<Inventory>("inventory.img", "Inventory").rootPid;
      const file = `pagemap-${pidNs}.img`;
      const pagemap = dir.read<PageMapImage>(file, "PageMap");
      const plan = decide(pagemap.lazyRuns ?? [], tracker, counts);
      tracker.close();
      let keep = plan.keep;
      if (eager) {
        await sendPages(o.control, o.pid, toRanges(plan.needed), onPage);
        keep = [...plan.keep, ...plan.needed].sort((a, b) => a - b);
        needed = [];
      } else needed = plan.needed;
      // hybrid: the lazy index holds every page, those kept here are installed locally by the agent's daemon
      const lazy = eager ? [] : [...plan.keep, ...plan.needed].sort((a, b) => a - b);
      const runs = toRanges(lazy).map((r) => ({ vaddr: r.start, nrPages: (r.end - r.start) / PAGE_SIZE }));
      dir.write(file, "PageMap", { ...pagemap, lazyRuns: runs, lazyPages: lazy.length });
      return { keep: toRanges(keep).map((r) => [r.start, (r.end - r.start) / PAGE_SIZE]) };
    },
  };
}

function pagesIn(ranges: Range[]): number {
  return ranges.reduce((n, r) => n + (r.end - r.start) / PAGE_SIZE, 0);
}

/**
 * Each lazy page of the frozen process: kept (the agent's copy is current), needed (sent now or
 * lazily: the source's copy is the one), or neither (zeros). In a tracked mapping a page still
 * write-protected and present was not written since it was sent; one not present any more was
 * zapped (MADV_DONTNEED: the marker reads as swapped) or swapped out: the source sends what it
 * holds (zeros or the data); one on the shared zero page was zapped, then read. Moved or
 * remapped memory lost its protection, so it shows as written, or as untracked at its new place.
 */
function decide(lazyRuns: { vaddr: number; nrPages: number }[], tracker: DirtyTracker, counts: Map<number, number>): { keep: number[]; needed: number[] } {
  const regions = tracker.categories();
  const keep: number[] = [], needed: number[] = [];
  let g = 0;
  for (const run of [...lazyRuns].sort((a, b) => a.vaddr - b.vaddr)) {
    for (let k = 0; k < run.nrPages; k++) {
      const a = run.vaddr + k * PAGE_SIZE;
      while (g < regions.length && regions[g].end <= a) g++;
      const cat = g < regions.length && regions[g].start <= a ? regions[g].categories : -1;
      const hasData = cat < 0 ? true : ((cat & (PAGE_IS.PRESENT | PAGE_IS.SWAPPED)) !== 0 && (cat & PAGE_IS.PFNZERO) === 0);
      if (!tracker.covered(a, a + PAGE_SIZE)) {
        if (hasData) needed.push(a);
      } else if (cat < 0) continue; // tracked and never written: zeros
      else if (cat & PAGE_IS.WRITTEN) needed.push(a);
      else if (!counts.has(a)) continue; // never sent, never written: the protection's marker on untouched memory
      else if (cat & PAGE_IS.PRESENT) {
        if (!(cat & PAGE_IS.PFNZERO)) keep.push(a);
      } else if (cat & PAGE_IS.SWAPPED) needed.push(a);
    }
  }
  return { keep, needed };
}

