import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { FerryError } from "../src/errors.js";
import type { TreeShape } from "./victim.js";
import { MODES, type Mode } from "../src/migrate/protocol.js";
import type { MigrateShape } from "./migrate.js";

/** dist/bench -> the repository root (sources, bench/.build, bench/results live there). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * single: one process per size; tree: a process tree beside one process of its memory; tcp: TCP
 * repair; migrate: `ferry migrate` between two hosts in each mode.
 */
export const SCENARIOS = ["single", "tree", "tcp", "migrate", "lazy"] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface BenchOptions {
  scenarios: Scenario[];
  /** sizes of the single-process victim */
  sizesMiB: number[];
  /** the tree victim: processes × threads, MiB per process */
  tree: TreeShape;
  /** established TCP connections of the TCP victim */
  connections: number;
  /** the migration victim: total memory, hot set, rewrite rate */
  migrate: MigrateShape;
  /** the modes the migration scenario runs */
  modes: Mode[];
  /** bytes each try of the link probe sends from hA to hB */
  linkBytes: number;
  /** sizes of the lazy scenario's victim (bench/lazy.ts) */
  lazySizesMiB: number[];
  /** dump+restore cycles per size; the table shows medians */
  runs: number;
  quick: boolean;
  /** the CPU that ferry and the victim share (latency runs are pinned to one CPU) */
  cpu: number;
  /** CPUs the dump and restore runners may use (taskset list): --cpu alone by default, so its page helper thread stays off */
  ferryCpus: string;
  outDir: string;
  /** run ferry under `node --cpu-prof` and summarize where its time goes (timings get slower) */
  profile: boolean;
  /** how long the victim sweeps its memory before it is dumped, and after it is restored */
  settleMs: number;
  /** touch and free memory before each cycle, so that it runs on memory the hypervisor backs already */
  warm: boolean;
  /** print latest.json on stdout instead of the table */
  json: boolean;
}

export const USAGE = `usage: node dist/bench/run.js [--scenarios single,tree,tcp,migrate] [--sizes 256,1024] [--tree 8x4x64] [--connections 1000]
                         [--migrate 1024x64x64] [--modes stop-copy,lazy,precopy,hybrid] [--runs N] [--quick] [--cpu N] [--ferry-cpus LIST] [--out DIR] [--profile] [--cold] [--json]
  --scenarios  which to run (default all): single = one process of each size; tree = a process tree,
               and one process of the tree's total memory beside it; tcp = TCP repair of many connections;
               migrate = ferry migrate between two hosts (veth, MTU 1500, TLS) in each mode
  --sizes    single-process victim sizes in MiB (default 256,1024)
  --tree     the tree: PROCESSESxTHREADSxMIB, MiB per process (default 8x4x64)
  --connections  established loopback TCP connections of the TCP victim (default 1000)
  --migrate  the migration victim: TOTALxHOTxPAGES, MiB in all, MiB rewritten all the time, hot pages
             rewritten per ~1 ms tick (default 1024x64x64)
  --modes    migration modes to run (default stop-copy,lazy,precopy,hybrid)
  --lazy-sizes  lazy scenario: the victim's sizes in MiB, migrated lazily between two hosts (default 256,1024,4096; 64 with --quick)
  --runs     dump+restore cycles per size, medians reported (default 3, 1 with --quick)
  --quick    smoke mode: one cycle each, 64 MiB, a 2x2x8 tree, 50 connections, a 64x8x64 migration, small probes
  --cpu      CPU that ferry and the victim are pinned to (default: the last one)
  --ferry-cpus  CPUs ferry's dump and restore may use, e.g. 1,0 (default: --cpu only); with two, ferry
               writes (dump) and verifies checksums (restore) on a helper thread
  --out      where latest.json and latest.md go (default bench/results)
  --profile  run ferry under node --cpu-prof and print where its time goes (slows it down)
  --cold     do not warm guest memory before each cycle (see bench/runner.ts, runWarm)
  --json     print the JSON report on stdout instead of the table (both are saved either way)`;

export function parseOptions(argv: string[]): BenchOptions | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenarios: { type: "string" },
      sizes: { type: "string" },
      tree: { type: "string" },
      connections: { type: "string" },
      migrate: { type: "string" },
      "lazy-sizes": { type: "string" },
      modes: { type: "string" },
      runs: { type: "string" },
      quick: { type: "boolean", default: false },
      cpu: { type: "string" },
      "ferry-cpus": { type: "string" },
      out: { type: "string" },
      profile: { type: "boolean", default: false },
      cold: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) return null;
  const quick = !!values.quick;
  const sizesMiB = values.sizes ? values.sizes.split(",").map((s) => positiveInt("--sizes", s)) : quick ? [64] : [256, 1024];
  const runs = values.runs ? positiveInt("--runs", values.runs) : quick ? 1 : 3;
  const cpus = os.availableParallelism();
  const cpu = values.cpu !== undefined ? Number(values.cpu) : cpus - 1;
  if (!Number.isInteger(cpu) || cpu < 0 || cpu >= cpus) {
    throw new FerryError("FERRY_USAGE", `--cpu ${values.cpu}: this machine has CPUs 0-${cpus - 1}`);
  }
  const scenarios = values.scenarios ? values.scenarios.split(",").map(scenario) : [...SCENARIOS];
  const tree = values.tree ? treeShape(values.tree) : quick ? { processes: 2, threads: 2, mib: 8 } : { processes: 8, threads: 4, mib: 64 };
  const connections = values.connections ? positiveInt("--connections", values.connections) : quick ? 50 : 1000;
  const migrate = values.migrate ? migrateShape(values.migrate) : quick ? { totalMiB: 64, hotMiB: 8, pagesPerTick: 64 } : { totalMiB: 1024, hotMiB: 64, pagesPerTick: 64 };
  const modes = values.modes ? values.modes.split(",").map(mode) : [...MODES_IN_ORDER];
  const lazySizesMiB = values["lazy-sizes"] ? values["lazy-sizes"].split(",").map((s) => positiveInt("--lazy-sizes", s)) : quick ? [64] : [256, 1024, 4096];
  return {
    scenarios: SCENARIOS.filter((s) => scenarios.includes(s)), sizesMiB, tree, connections, migrate, modes, lazySizesMiB,
    linkBytes: quick ? 32 << 20 : 256 << 20, runs, quick, cpu,
    ferryCpus: values["ferry-cpus"] ?? String(cpu),
    outDir: path.resolve(values.out ?? path.join(REPO_ROOT, "bench/results")),
    profile: !!values.profile,
    settleMs: quick ? 100 : 300,
    warm: !values.cold,
    json: !!values.json,
  };
}

function positiveInt(flag: string, s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) throw new FerryError("FERRY_USAGE", `${flag}: not a positive whole number: ${s}`);
  return n;
}

function scenario(s: string): Scenario {
  if (!(SCENARIOS as readonly string[]).includes(s)) throw new FerryError("FERRY_USAGE", `--scenarios: no scenario ${s} (${SCENARIOS.join(", ")})`);
  return s as Scenario;
}

/** The order of the table: the simplest first. */
const MODES_IN_ORDER: readonly Mode[] = ["stop-copy", "lazy", "precopy", "hybrid"];

function mode(s: string): Mode {
  if (!(MODES as readonly string[]).includes(s)) throw new FerryError("FERRY_USAGE", `--modes: no mode ${s} (${MODES_IN_ORDER.join(", ")})`);
  return s as Mode;
}

function migrateShape(s: string): MigrateShape {
  const parts = s.split("x");
  if (parts.length !== 3) throw new FerryError("FERRY_USAGE", `--migrate: expected TOTALxHOTxPAGES (e.g. 1024x64x64), got ${s}`);
  const [totalMiB, hotMiB, pagesPerTick] = parts.map((p) => positiveInt("--migrate", p));
  if (hotMiB >= totalMiB) throw new FerryError("FERRY_USAGE", `--migrate ${s}: the hot set must be smaller than the whole`);
  return { totalMiB, hotMiB, pagesPerTick };
}

function treeShape(s: string): TreeShape {
  const parts = s.split("x");
  if (parts.length !== 3) throw new FerryError("FERRY_USAGE", `--tree: expected PROCESSESxTHREADSxMIB (e.g. 8x4x64), got ${s}`);
  const [processes, threads, mib] = parts.map((p) => positiveInt("--tree", p));
  if (processes > 64 || threads > 64) throw new FerryError("FERRY_USAGE", `--tree ${s}: at most 64 processes of at most 64 threads`);
  return { processes, threads, mib };
}
