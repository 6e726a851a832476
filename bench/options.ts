import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { FerryError } from "../src/errors.js";
import type { TreeShape } from "./victim.js";

/** dist/bench -> the repository root (sources, bench/.build, bench/results live there). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** single: one process per size; tree: a process tree beside one process of its memory; tcp: TCP repair. */
export const SCENARIOS = ["single", "tree", "tcp"] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface BenchOptions {
  scenarios: Scenario[];
  /** sizes of the single-process victim */
  sizesMiB: number[];
  /** the tree victim: processes × threads, MiB per process */
  tree: TreeShape;
  /** established TCP connections of the TCP victim */
  connections: number;
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

export const USAGE = `usage: node dist/bench/run.js [--scenarios single,tree,tcp] [--sizes 256,1024] [--tree 8x4x64] [--connections 1000]
                         [--runs N] [--quick] [--cpu N] [--ferry-cpus LIST] [--out DIR] [--profile] [--cold] [--json]
  --scenarios  which to run (default all): single = one process of each size; tree = a process tree,
               and one process of the tree's total memory beside it; tcp = TCP repair of many connections
  --sizes    single-process victim sizes in MiB (default 256,1024)
  --tree     the tree: PROCESSESxTHREADSxMIB, MiB per process (default 8x4x64)
  --connections  established loopback TCP connections of the TCP victim (default 1000)
  --runs     dump+restore cycles per size, medians reported (default 3, 1 with --quick)
  --quick    smoke mode: one cycle each, 64 MiB, a 2x2x8 tree, 50 connections, small physical-limit probes
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
  return {
    scenarios: SCENARIOS.filter((s) => scenarios.includes(s)), sizesMiB, tree, connections, runs, quick, cpu,
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

function treeShape(s: string): TreeShape {
  const parts = s.split("x");
  if (parts.length !== 3) throw new FerryError("FERRY_USAGE", `--tree: expected PROCESSESxTHREADSxMIB (e.g. 8x4x64), got ${s}`);
  const [processes, threads, mib] = parts.map((p) => positiveInt("--tree", p));
  if (processes > 64 || threads > 64) throw new FerryError("FERRY_USAGE", `--tree ${s}: at most 64 processes of at most 64 threads`);
  return { processes, threads, mib };
}
