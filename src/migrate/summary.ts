import type { DumpResult } from "../dump/index.js";
import type { LazySummary } from "../lazy/stats.js";
import type { SourceStats } from "../lazy/pageServer.js";
import type { Mode, RestoredReply } from "./protocol.js";
import type { PrecopyResult } from "./precopy.js";
import type { RoundRecord, SwitchStep, Timeline } from "./timeline.js";
import type { CompressionSummary } from "./compression.js";

export interface MigrateSummary {
  pid: number;
  mode: Mode;
  outcome: "complete";
  /** the PID at the destination (the same, in the destination's PID namespace) */
  restoredPid: number;
  /** from the freeze here to the process running there */
  downtimeMs: number;
  /** where the downtime went: each step on either side, `at` in ms from the freeze (the seize began before it) */
  downtimeSteps: SwitchStep[];
  totalMs: number;
  /** images (everything but pre-copied and lazily sent memory) */
  imageBytes: number;
  /** everything sent: control connection (images, rounds) and the lazy page server */
  bytesSent: number;
  rounds: RoundRecord[];
  /** pages of private anonymous memory sent in rounds, at the switch-over or lazily */
  pageTransfers: { pages: number; transfers: number; sentOnce: number; sentTwice: number; sentMore: number; redirtiedResends: number; faultResends: number };
  faults: number;
  faultLatencyUs: LazySummary["faultLatencyUs"] | null;
  /** from the resume until the last page arrived (lazy, hybrid) */
  allPagesMs: number | null;
  lazy: LazySummary | null;
  /** when each phase began (ms from the start) */
  phases: { phase: string; t: number }[];
  /** the agent's restore, pre-copied pages installed included (ms) */
  restoreMs: number;
  /** whether page data went compressed, and how much smaller */
  compression: CompressionSummary;
}

const r2 = (x: number) => Number(x.toFixed(2));

export function summarize(o: {
  mode: Mode; pid: number; timeline: Timeline; dump: DumpResult; imageBytes: number; controlBytes: number;
  restored: RestoredReply; lazy: LazySummary | null; precopy: PrecopyResult | null; pageServer: SourceStats | null;
  compression: CompressionSummary;
}): MigrateSummary {
  const tl = o.timeline;
  // transfers per page: the rounds' counts, plus one for each page the lazy server sent
  const counts = o.precopy ? o.precopy.transferCounts() : new Map<number, number>();
  let lazyPages = o.pageServer?.pagesSent ?? 0;
  let redirtied = o.precopy?.redirtiedResends ?? 0;
  if (o.precopy && o.pageServer) {
    for (const addr of o.precopy.neededPages()) {
      const c = counts.get(addr) ?? 0;
      if (c) redirtied++; // sent in a round, written after it: the lazy copy is the new one
      counts.set(addr, c + 1);
      lazyPages--;
    }
  }
  let once = 0, twice = 0, more = 0, transfers = 0;
  for (const c of counts.values()) {
    transfers += c;
    if (c === 1) once++;
    else if (c === 2) twice++;
    else if (c > 2) more++;
  }
  if (!o.pageServer && !o.precopy) lazyPages = o.dump.pages; // stop-copy: every page once, in the images
  once += Math.max(0, lazyPages); // plain lazy: every page once (the page server counts them)
  transfers += Math.max(0, lazyPages) + (o.pageServer?.pagesResent ?? 0);
  return {
    pid: o.pid, mode: o.mode, outcome: "complete", restoredPid: o.restored.pid,
    downtimeMs: r2(tl.resumeMs! - tl.freezeMs!),
    downtimeSteps: tl.switchSteps.map((s) => ({ where: s.where, name: s.name, at: r2(s.at - tl.freezeMs!), ms: r2(s.ms) })),
    totalMs: r2(tl.now()),
    imageBytes: o.imageBytes,
    bytesSent: o.controlBytes + (o.pageServer?.bytesSent ?? 0),
    rounds: tl.rounds,
    pageTransfers: {
      pages: counts.size + Math.max(0, lazyPages), transfers, sentOnce: once, sentTwice: twice, sentMore: more,
      redirtiedResends: redirtied, faultResends: o.pageServer?.pagesResent ?? 0,
    },
    faults: o.lazy?.faults ?? 0,
    faultLatencyUs: o.lazy?.faultLatencyUs ?? null,
    allPagesMs: o.lazy?.allPagesMs ?? null,
    lazy: o.lazy,
    phases: tl.phases.map((p) => ({ phase: p.phase, t: r2(p.t) })),
    restoreMs: r2(o.restored.restoreMs),
    compression: o.compression,
  };
}
