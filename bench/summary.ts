import type { CycleResult } from "./cycle.js";
import type { Limits } from "./limits.js";
import type { Scenario } from "./options.js";
import type { TcpReport, TreeReport } from "./scenarios.js";
import type { MigrateReport, MigrateShape } from "./migrate.js";
import type { LazyReport } from "./lazy.js";
import type { Mode } from "../src/migrate/protocol.js";

/** Medians over the cycles of one size, with the floors the physical limits allow. Times in ms. */
export interface SizeSummary extends CycleFigures {
  sizeMiB: number;
  dumpBestMs: number;
  restoreBestMs: number;
  /** CPU time / wall time of the operation's process: below ~0.9, something else had the CPU or it waited */
  dumpCpuShare: number;
  restoreCpuShare: number;
  /** bytes of pages written (dump) and filled (restore) per second of the operation */
  dumpGBps: number;
  restoreGBps: number;
  /** the least a one-thread dump can take: read the pages with process_vm_readv, write them to /dev/shm */
  dumpFloorMs: number;
  /** the least a one-thread restore can take: read them from /dev/shm, process_vm_writev them into fresh memory */
  restoreFloorMs: number;
  /** RSS of such a process just before the operation: Node and ferry's modules, no work yet */
  baselineRssMiB: number;
  zeroPagesSkipped: number;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Medians (peaks: highest) over any victim's cycles: what every scenario's summary shows. Times in ms. */
export interface CycleFigures {
  cycles: number;
  dumpMs: number;
  dumpFrozenMs: number;
  dumpCommandMs: number;
  restoreMs: number;
  restoreCommandMs: number;
  /** dump frozen time + restore time */
  downtimeMs: number;
  /** freeze to running again as it happened here, the restore runner's Node start-up included */
  downtimeEndToEndMs: number;
  /** highest peak RSS of a dump or restore process over the cycles (Node included) */
  dumpPeakRssMiB: number;
  restorePeakRssMiB: number;
  imageBytes: number;
  /** PASS when every cycle's restored victim found all its pages right and ran */
  verdict: "PASS" | "FAIL";
}

export function cycleFigures(cycles: CycleResult[]): CycleFigures {
  const med = (pick: (c: CycleResult) => number) => median(cycles.map(pick));
  return {
    cycles: cycles.length,
    dumpMs: med((c) => c.dump.opMs),
    dumpFrozenMs: med((c) => c.dump.frozenMs),
    dumpCommandMs: med((c) => c.dump.commandMs),
    restoreMs: med((c) => c.restore.opMs),
    restoreCommandMs: med((c) => c.restore.commandMs),
    downtimeMs: med((c) => c.downtime.frozenPlusRestoreMs),
    downtimeEndToEndMs: med((c) => c.downtime.endToEndMs),
    dumpPeakRssMiB: Math.max(...cycles.map((c) => c.dump.peakRssMiB)),
    restorePeakRssMiB: Math.max(...cycles.map((c) => c.restore.peakRssMiB)),
    imageBytes: med((c) => c.dump.imageBytes),
    verdict: cycles.every((c) => c.victim.pass) ? "PASS" : "FAIL",
  };
}

export function summarize(sizeMiB: number, cycles: CycleResult[], limits: Limits): SizeSummary {
  const med = (pick: (c: CycleResult) => number) => median(cycles.map(pick));
  const bytes = sizeMiB * 2 ** 20;
  const msAt = (gbps: number) => bytes / (gbps * 1e6);
  return {
    sizeMiB,
    ...cycleFigures(cycles),
    dumpBestMs: Math.min(...cycles.map((c) => c.dump.opMs)),
    restoreBestMs: Math.min(...cycles.map((c) => c.restore.opMs)),
    dumpCpuShare: med((c) => c.dump.opCpuMs / c.dump.opMs),
    restoreCpuShare: med((c) => c.restore.opCpuMs / c.restore.opMs),
    dumpGBps: med((c) => (c.dump.pages * 4096) / (c.dump.opMs * 1e6)),
    restoreGBps: med((c) => c.restore.bytes / (c.restore.opMs * 1e6)),
    dumpFloorMs: msAt(limits.vmReadvGBps) + msAt(limits.shmWriteGBps),
    restoreFloorMs: msAt(limits.shmReadGBps) + msAt(limits.vmWritevColdGBps),
    baselineRssMiB: med((c) => Math.max(c.dump.rssBeforeMiB, c.restore.rssBeforeMiB)),
    zeroPagesSkipped: med((c) => c.dump.zeroPagesSkipped),
  };
}

/** The issue's targets, for 1 GiB. */
export const TARGETS_1GIB = { dumpMs: 500, restoreMs: 500, peakRssMiB: 150 } as const;

/**
 * CRIU 4.2 on this kind of machine, images in /dev/shm: DESIGN.md §10, medians of two sessions
 * measured by a colleague in an earlier session. Not measured by this benchmark.
 */
export const CRIU_REFERENCE = {
  source: "DESIGN.md §10: CRIU 4.2, images in /dev/shm, medians of two sessions measured by a colleague in an earlier session (not in this run)",
  sizes: {
    256: { dump: "0.19–0.22 s", restore: "0.17–0.21 s" },
    1024: { dump: "1.08–1.27 s", restore: "1.09–1.93 s" },
  },
  issueQuotes: { 1024: { dump: "1.1–1.4 s", restore: "1.1–2.2 s" } },
} as const;

/** Everything latest.json holds. */
export interface BenchReport {
  schema: "ferry-bench/1";
  startedAt: string;
  finishedAt: string;
  options: {
    scenarios: Scenario[]; sizesMiB: number[]; tree: { processes: number; threads: number; mib: number }; connections: number;
    migrate: MigrateShape; modes: Mode[]; lazySizesMiB?: number[];
    runs: number; quick: boolean; cpu: number; profile: boolean; warm: boolean;
  };
  host: { kernel: string; cpuModel: string; cpus: number; node: string; thp: string; ferryCommit: string };
  /** /proc/loadavg (1 minute) when the run started and ended: other work on the machine skews timings */
  loadAverage: { start: number; end: number };
  /** pinning: ferry's processes and the victim share this one CPU */
  pinnedCpu: number;
  /** CPUs the dump and restore runners could use (taskset list); absent in older reports: pinnedCpu */
  ferryCpus?: string;
  /** measured on the first single process of the run (of the single or the tree scenario); null when neither ran */
  limits: Limits | null;
  /** the single scenario: one process per size (empty when not selected) */
  sizes: (SizeSummary & { runs: CycleResult[] })[];
  /** the tree scenario, or null when not selected */
  tree: TreeReport | null;
  /** the TCP scenario, or null when not selected */
  tcp: TcpReport | null;
  /** the migration scenario, or null when not selected */
  migrate: MigrateReport | null;
  /** the lazy scenario, or null when not selected (absent in older reports) */
  lazy?: LazyReport | null;
  targets1GiB: typeof TARGETS_1GIB;
  reference: typeof CRIU_REFERENCE;
}
