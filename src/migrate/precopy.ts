import { PAGE_SIZE } from "../kernel/sys.js";
import { PAGE_IS, type PageRegion } from "../kernel/pagemapScan.js";
import { ImageDir } from "../images/store.js";
import type { Inventory, LazyRunImage, PageMapImage } from "../images/types.js";
import type { Control } from "./control.js";
import { DirtyTracker, type Range } from "./dirtyTracker.js";
import { sendPages } from "./pageFrames.js";
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
   *  (eager: pre-copy) the rest sent now; the lazy runs cut down to the pages with data. */
  switchOver(images: string, eager: boolean): Promise<{ request: RestoreRequest; lazyRuns: LazyRunImage[] }>;
  /** the tracked ranges: the switch-over sorts out each of their pages (the dump need not scan them) */
  tracked: Range[];
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
  let needed: Range[] = [];
  /** every page sent in a round, as ranges (the switch-over works on these, not on `counts`) */
  let sent: Range[] = [];
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
      sent = unionRanges(sent, ranges);
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
    neededPages: () => needed.flatMap((r) => pagesOf(r)),
    tracked: tracker.ranges,
    close: () => tracker.close(),
    async switchOver(images: string, eager: boolean): Promise<{ request: RestoreRequest; lazyRuns: LazyRunImage[] }> {
      const dir = new ImageDir(images);
      const pidNs = dir.read<Inventory>("inventory.img", "Inventory").rootPid;
      const file = `pagemap-${pidNs}.img`;
      const pagemap = dir.read<PageMapImage>(file, "PageMap");
      const plan = decide(pagemap.lazyRuns ?? [], tracker.ranges, tracker.categories(), sent);
      tracker.close();
      let keep = plan.keep;
      if (eager) {
        await sendPages(o.control, o.pid, plan.needed, onPage);
        keep = unionRanges(plan.keep, plan.needed);
        needed = [];
      } else needed = plan.needed;
      // the lazy index holds every page with data; the agent's daemon installs those kept there
      // after the resume (pre-copy: all of them), hybrid's page server sends the rest
      const lazy = eager ? keep : unionRanges(plan.keep, plan.needed);
      const runs = lazy.map((r) => ({ vaddr: r.start, nrPages: (r.end - r.start) / PAGE_SIZE }));
      dir.write(file, "PageMap", { ...pagemap, lazyRuns: runs, lazyPages: pagesIn(lazy) });
      return { request: { keep: keep.map((r) => [r.start, (r.end - r.start) / PAGE_SIZE]) }, lazyRuns: runs };
    },
  };
}

function pagesOf(r: Range): number[] {
  const out: number[] = [];
  for (let a = r.start; a < r.end; a += PAGE_SIZE) out.push(a);
  return out;
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
 *
 * Decided by stretches of pages that agree on everything (lazy run, tracked range, categories,
 * sent or not), never page by page: the process is frozen while this runs.
 */
export function decide(lazyRuns: { vaddr: number; nrPages: number }[], tracked: Range[], regions: PageRegion[], sent: Range[]): { keep: Range[]; needed: Range[] } {
  const keep: Range[] = [], needed: Range[] = [];
  const inTracked = new Cursor(tracked), inRegion = new Cursor(regions), inSent = new Cursor(sent);
  for (const run of [...lazyRuns].sort((a, b) => a.vaddr - b.vaddr)) {
    const runEnd = run.vaddr + run.nrPages * PAGE_SIZE;
    for (let a = run.vaddr; a < runEnd;) {
      const end = Math.min(runEnd, inTracked.until(a), inRegion.until(a), inSent.until(a));
      const region = inRegion.at(a);
      const cat = region ? region.categories : -1;
      const hasData = cat < 0 ? true : ((cat & (PAGE_IS.PRESENT | PAGE_IS.SWAPPED)) !== 0 && (cat & PAGE_IS.PFNZERO) === 0);
      let to: Range[] | null = null;
      if (!inTracked.at(a)) to = hasData ? needed : null;
      else if (cat < 0) to = null; // tracked and never written: zeros
      else if (cat & PAGE_IS.WRITTEN) to = needed;
      else if (!inSent.at(a)) to = null; // never sent, never written: the protection's marker on untouched memory
      else if (cat & PAGE_IS.PRESENT) to = cat & PAGE_IS.PFNZERO ? null : keep;
      else if (cat & PAGE_IS.SWAPPED) to = needed;
      if (to) addRange(to, a, end);
      a = end;
    }
  }
  return { keep, needed };
}

/** Walks a sorted list of disjoint ranges with addresses that only grow. */
class Cursor<T extends Range> {
  private i = 0;
  constructor(private readonly list: T[]) {}

  /** The range holding `addr`, or null. */
  at(addr: number): T | null {
    while (this.i < this.list.length && this.list[this.i].end <= addr) this.i++;
    const r = this.list[this.i];
    return r && r.start <= addr ? r : null;
  }

  /** Where what `at(addr)` says stops being true: the end of its range, or the start of the next. */
  until(addr: number): number {
    const r = this.at(addr);
    if (r) return r.end;
    return this.i < this.list.length ? this.list[this.i].start : Infinity;
  }
}

function addRange(list: Range[], start: number, end: number): void {
  const last = list[list.length - 1];
  if (last && last.end === start) last.end = end;
  else list.push({ start, end });
}

/** The union of two sorted lists of disjoint ranges. */
export function unionRanges(a: Range[], b: Range[]): Range[] {
  const all = [...a, ...b].sort((x, y) => x.start - y.start);
  const out: Range[] = [];
  for (const r of all) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else out.push({ start: r.start, end: r.end });
  }
  return out;
}
