/**
 * The benchmark's scenarios beyond one process per size (issue 4): a process tree beside one
 * process of the same total memory, and TCP repair of many established connections beside the
 * same victim with its listener only. Each pair runs in alternation, in the same conditions.
 */
import type { CycleResult, StartVictim } from "./cycle.js";
import type { Limits } from "./limits.js";
import { cycleFigures, median, summarize, type CycleFigures, type SizeSummary } from "./summary.js";
import { Sweeper, TcpConns, TreeSweeper, type TreeShape, type VictimBins } from "./victim.js";

/** Runs one cycle (warm-up, limits, progress line included) and returns it. */
export type RunOne = (label: string, sizeMiB: number, start: StartVictim) => Promise<CycleResult>;

export interface TreeCycles {
  shape: TreeShape;
  tree: CycleResult[];
  single: CycleResult[];
}

export async function runTree(shape: TreeShape, runs: number, bins: VictimBins, runOne: RunOne): Promise<TreeCycles> {
  const totalMiB = shape.processes * shape.mib;
  const label = `tree ${shape.processes}x${shape.threads}x${shape.mib}MiB`;
  const out: TreeCycles = { shape, tree: [], single: [] };
  for (let run = 1; run <= runs; run++) {
    // The single process first: it can measure the physical limits when no single-size cycle did.
    out.single.push(await runOne(`single ${totalMiB}MiB (tree comparison) run ${run}/${runs}`, totalMiB,
      (dir, cpu, cleanup) => Sweeper.start(bins.sweeper, totalMiB, dir, cpu, cleanup)));
    out.tree.push(await runOne(`${label} run ${run}/${runs}`, totalMiB,
      (dir, cpu, cleanup) => TreeSweeper.start(bins.treesweeper, shape, dir, cpu, cleanup)));
  }
  return out;
}

export interface TreeReport {
  shape: { processes: number; threadsPerProcess: number; mibPerProcess: number; totalMiB: number };
  tree: SizeSummary & { runs: CycleResult[] };
  /** one sweeper of the tree's total memory, measured in alternation with the tree */
  single: SizeSummary & { runs: CycleResult[] };
  /**
   * Medians of the whole dump() call + restore, ms: the most any process of the victim was stopped.
   * ferry freezes a tree one thread and one process after another, root first, and its frozen time
   * counts from the last one; the root stops at the start of the call, the others later.
   */
  rootDowntimeMs: { tree: number; single: number };
  /** tree ÷ single process, of the medians */
  ratio: { dump: number; dumpFrozen: number; restore: number; downtime: number; rootDowntime: number };
  verdict: "PASS" | "FAIL";
}

export function summarizeTree(c: TreeCycles, limits: Limits): TreeReport {
  const totalMiB = c.shape.processes * c.shape.mib;
  const tree = { ...summarize(totalMiB, c.tree, limits), runs: c.tree };
  const single = { ...summarize(totalMiB, c.single, limits), runs: c.single };
  const rootDowntime = (cycles: CycleResult[]) => median(cycles.map((r) => r.dump.opMs + r.restore.opMs));
  const rootDowntimeMs = { tree: rootDowntime(c.tree), single: rootDowntime(c.single) };
  return {
    shape: { processes: c.shape.processes, threadsPerProcess: c.shape.threads, mibPerProcess: c.shape.mib, totalMiB },
    tree, single, rootDowntimeMs,
    ratio: {
      dump: tree.dumpMs / single.dumpMs,
      dumpFrozen: tree.dumpFrozenMs / single.dumpFrozenMs,
      restore: tree.restoreMs / single.restoreMs,
      downtime: tree.downtimeMs / single.downtimeMs,
      rootDowntime: rootDowntimeMs.tree / rootDowntimeMs.single,
    },
    verdict: tree.verdict === "PASS" && single.verdict === "PASS" ? "PASS" : "FAIL",
  };
}

export interface TcpCycles {
  connections: number;
  sockets: number;
  queuedConnections: number;
  loaded: CycleResult[];
  /** the same victim with no connection: its listener only */
  baseline: CycleResult[];
}

export async function runTcp(connections: number, runs: number, bins: VictimBins, runOne: RunOne): Promise<TcpCycles> {
  const out: TcpCycles = { connections, sockets: 0, queuedConnections: 0, loaded: [], baseline: [] };
  for (let run = 1; run <= runs; run++) {
    out.baseline.push(await runOne(`tcp listener only run ${run}/${runs}`, 0,
      (dir, cpu, cleanup) => TcpConns.start(bins.tcpconns, 0, dir, cpu, cleanup)));
    out.loaded.push(await runOne(`tcp ${connections} connections run ${run}/${runs}`, 0, async (dir, cpu, cleanup) => {
      const victim = await TcpConns.start(bins.tcpconns, connections, dir, cpu, cleanup);
      out.sockets = victim.sockets;
      out.queuedConnections = victim.queued;
      return victim;
    }));
  }
  return out;
}

/** Medians over the cycles of one TCP victim. Times in ms. */
export interface TcpSummary extends CycleFigures {
  dumpInjectedSyscalls: number;
  restoreInjectedSyscalls: number;
}

function summarizeTcpCycles(cycles: CycleResult[]): TcpSummary & { runs: CycleResult[] } {
  const med = (pick: (c: CycleResult) => number) => median(cycles.map(pick));
  return {
    ...cycleFigures(cycles),
    dumpInjectedSyscalls: med((c) => c.dump.injectedSyscalls),
    restoreInjectedSyscalls: med((c) => c.restore.injectedSyscalls),
    runs: cycles,
  };
}

export interface TcpReport {
  connections: number;
  /** both ends of every connection, and the listener */
  sockets: number;
  /** connections with bytes queued in one direction or both when dumped */
  queuedConnections: number;
  loaded: TcpSummary & { runs: CycleResult[] };
  baseline: TcpSummary & { runs: CycleResult[] };
  /**
   * Per connection (two sockets, both ends in the victim), in ms: the whole operation ÷ connections,
   * and (loaded − listener only) ÷ connections, the cost the connections themselves add.
   */
  perConnectionMs: {
    dump: number; dumpAdded: number;
    dumpFrozen: number; dumpFrozenAdded: number;
    restore: number; restoreAdded: number;
    downtime: number; downtimeAdded: number;
  };
  verdict: "PASS" | "FAIL";
}

export function summarizeTcp(c: TcpCycles): TcpReport {
  const loaded = summarizeTcpCycles(c.loaded), baseline = summarizeTcpCycles(c.baseline);
  const per = (pick: (s: TcpSummary) => number) => pick(loaded) / c.connections;
  const added = (pick: (s: TcpSummary) => number) => (pick(loaded) - pick(baseline)) / c.connections;
  return {
    connections: c.connections, sockets: c.sockets, queuedConnections: c.queuedConnections, loaded, baseline,
    perConnectionMs: {
      dump: per((s) => s.dumpMs), dumpAdded: added((s) => s.dumpMs),
      dumpFrozen: per((s) => s.dumpFrozenMs), dumpFrozenAdded: added((s) => s.dumpFrozenMs),
      restore: per((s) => s.restoreMs), restoreAdded: added((s) => s.restoreMs),
      downtime: per((s) => s.downtimeMs), downtimeAdded: added((s) => s.downtimeMs),
    },
    verdict: loaded.verdict === "PASS" && baseline.verdict === "PASS" ? "PASS" : "FAIL",
  };
}
