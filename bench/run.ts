/**
 * `npm run bench`: dump and restore a victim of 256 MiB and 1 GiB of touched memory with images in
 * /dev/shm, and put every figure beside the physical limit measured in the same run; then a tree of
 * 8 processes × 4 threads × 64 MiB beside one process of 512 MiB, and TCP repair of 1,000
 * established connections (bench/scenarios.ts), and `ferry migrate` of 1 GiB with a 64 MiB hot set
 * between two hosts in each mode (bench/migrate.ts), and lazy migrations of 256 MiB, 1 GiB and 4 GiB
 * between the two hosts (bench/lazy.ts). `--scenarios` picks among them.
 * Writes <out>/latest.json and <out>/latest.md and prints the table. See bench/options.ts for flags.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { FerryError } from "../src/errors.js";
import { parseOptions, USAGE, REPO_ROOT, type BenchOptions } from "./options.js";
import { Cleanup, becomeSubreaper } from "./cleanup.js";
import { buildVictims, Sweeper } from "./victim.js";
import { runCycle, removeStaleWorkDirs, type CycleResult, type StartVictim } from "./cycle.js";
import { summarize, TARGETS_1GIB, CRIU_REFERENCE, type BenchReport } from "./summary.js";
import { runTcp, runTree, summarizeTcp, summarizeTree } from "./scenarios.js";
import { renderTable } from "./table.js";
import { renderMigrate, renderTcp, renderTree } from "./scenarioTable.js";
import { runMigrate } from "./migrate.js";
import { runLazy, summarizeLazy } from "./lazy.js";
import { renderLazy } from "./lazyTable.js";
import { cpuProfFlags, renderProfile } from "./profile.js";
import type { Limits } from "./limits.js";

const LIMIT_PROBE_BYTES = 256 << 20;

async function main(opts: BenchOptions, cleanup: Cleanup): Promise<BenchReport> {
  const startedAt = new Date().toISOString();
  const loadAtStart = os.loadavg()[0];
  const bins = buildVictims();
  for (const dir of removeStaleWorkDirs()) process.stderr.write(`bench: removed /dev/shm/${dir}, left by a benchmark that was killed\n`);
  const profileDir = path.join(opts.outDir, "profiles");
  if (opts.profile) fs.mkdirSync(profileDir, { recursive: true });

  // The first victim with a block of memory to probe measures the physical limits of the run.
  let limits: Limits | null = null;
  const runOne = async (label: string, sizeMiB: number, start: StartVictim): Promise<CycleResult> => {
    const { cycle, limits: measured } = await runCycle({
      cpu: opts.cpu, ferryCpus: opts.ferryCpus, settleMs: opts.settleMs, cleanup,
      warmMiB: opts.warm && sizeMiB ? 3 * sizeMiB + (opts.quick ? 256 : 1024) : 0,
      limitBytes: limits ? null : opts.quick ? 64 << 20 : LIMIT_PROBE_BYTES,
      nodeFlags: (mode) => opts.profile ? cpuProfFlags(profileDir, `${mode}-${label}`) : [],
    }, label, sizeMiB, start);
    limits ??= measured;
    process.stderr.write(
      `bench: ${label}: dump ${cycle.dump.opMs.toFixed(0)} ms (frozen ${cycle.dump.frozenMs.toFixed(0)}), ` +
      `restore ${cycle.restore.opMs.toFixed(0)} ms, peak RSS ${cycle.dump.peakRssMiB.toFixed(0)}/${cycle.restore.peakRssMiB.toFixed(0)} MiB, ` +
      `victim: ${cycle.victim.pass ? "PASS" : cycle.victim.verdict}\n`,
    );
    return cycle;
  };

  const bySize = new Map<number, CycleResult[]>();
  if (opts.scenarios.includes("single")) {
    for (const sizeMiB of opts.sizesMiB) {
      for (let run = 1; run <= opts.runs; run++) {
        const cycle = await runOne(`${sizeMiB}MiB-run${run}`, sizeMiB, (dir, cpu, local) => Sweeper.start(bins.sweeper, sizeMiB, dir, cpu, local));
        bySize.set(sizeMiB, [...(bySize.get(sizeMiB) ?? []), cycle]);
      }
    }
  }
  const treeCycles = opts.scenarios.includes("tree") ? await runTree(opts.tree, opts.runs, bins, runOne) : null;
  const tcpCycles = opts.scenarios.includes("tcp") ? await runTcp(opts.connections, opts.runs, bins, runOne) : null;
  const migrate = opts.scenarios.includes("migrate") ? await runMigrate(opts.migrate, opts.modes, opts.runs, opts.linkBytes, cleanup) : null;
  const lazyRun = opts.scenarios.includes("lazy") ? await runLazy({
    sizesMiB: opts.lazySizesMiB, runs: opts.runs, cpu: opts.cpu, ferryCpus: opts.ferryCpus, settleMs: opts.settleMs, warm: opts.warm,
    linkProbeBytes: opts.linkBytes, profileDir: opts.profile ? profileDir : null,
  }, bins.sweeper, cleanup) : null;
  const measured = limits as Limits | null; // assigned inside runOne: TypeScript cannot see it
  if ((bySize.size || treeCycles) && !measured) throw new FerryError("FERRY_BENCH", "no physical limits measured");
  const sizes = [...bySize].map(([m, cycles]) => ({ ...summarize(m, cycles, measured!), runs: cycles }));
  return {
    schema: "ferry-bench/1",
    startedAt,
    finishedAt: new Date().toISOString(),
    options: {
      scenarios: opts.scenarios, sizesMiB: opts.sizesMiB, tree: opts.tree, connections: opts.connections, migrate: opts.migrate, modes: opts.modes, lazySizesMiB: opts.lazySizesMiB,
      runs: opts.runs, quick: opts.quick, cpu: opts.cpu, profile: opts.profile, warm: opts.warm,
    },
    host: hostInfo(),
    loadAverage: { start: loadAtStart, end: os.loadavg()[0] },
    pinnedCpu: opts.cpu,
    ferryCpus: opts.ferryCpus,
    limits: measured,
    sizes,
    tree: treeCycles ? summarizeTree(treeCycles, measured!) : null,
    tcp: tcpCycles ? summarizeTcp(tcpCycles) : null,
    migrate,
    lazy: lazyRun ? summarizeLazy(lazyRun) : null,
    targets1GiB: TARGETS_1GIB,
    reference: CRIU_REFERENCE,
  };
}

function hostInfo(): BenchReport["host"] {
  const read = (f: string) => {
    try {
      return fs.readFileSync(f, "utf8");
    } catch {
      return "";
    }
  };
  // FERRY_BENCH_REVISION names the engine when the benchmark runs outside a checkout (a snapshot).
  let ferryCommit = process.env.FERRY_BENCH_REVISION ?? "unknown";
  if (!process.env.FERRY_BENCH_REVISION) {
    try {
      const git = (...args: string[]) => execFileSync("git", args, { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
      // --no-optional-locks: read only, never take the index lock of a checkout others work in
      const dirty = git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no", "src") !== "";
      ferryCommit = git("rev-parse", "--short", "HEAD") + (dirty ? " + uncommitted changes in src/" : "");
    } catch { /* not a git checkout */ }
  }
  return {
    kernel: os.release(),
    cpuModel: /model name\s*:\s*(.*)/.exec(read("/proc/cpuinfo"))?.[1] ?? os.cpus()[0]?.model ?? "?",
    cpus: os.availableParallelism(),
    node: process.versions.node,
    thp: /\[(\w+)\]/.exec(read("/sys/kernel/mm/transparent_hugepage/enabled"))?.[1] ?? "?",
    ferryCommit,
  };
}

/** Writes latest.json and latest.md; returns both texts. */
function save(report: BenchReport, outDir: string, profiles: string): { json: string; table: string } {
  fs.mkdirSync(outDir, { recursive: true });
  const { limits } = report;
  const sections = [
    report.sizes.length && limits ? renderTable({ ...report, limits }) : "",
    report.tree ? renderTree(report.tree, report.options.runs) : "",
    report.tcp ? renderTcp(report.tcp, report.options.runs) : "",
    report.migrate ? renderMigrate(report.migrate, report.options.runs) : "",
    report.lazy ? renderLazy(report.lazy, report.options.runs, report.ferryCpus ?? String(report.pinnedCpu)) : "",
    profiles,
  ];
  const table = sections.filter((s) => s).join("\n");
  const json = JSON.stringify(report, null, 2) + "\n";
  fs.writeFileSync(path.join(outDir, "latest.json"), json);
  fs.writeFileSync(path.join(outDir, "latest.md"), table);
  return { json, table };
}

/** With --profile: where the dump and restore of the largest single size spent their time. */
function profileSummary(opts: BenchOptions): string {
  if (!opts.profile || !opts.scenarios.includes("single")) return "";
  const size = Math.max(...opts.sizesMiB);
  const dir = path.join(opts.outDir, "profiles");
  const ops = [
    { mode: "dump", op: { fn: "dump", file: "dump/index.js" } },
    { mode: "restore", op: { fn: "restore", file: "restore/index.js" } },
  ];
  return ops
    .map(({ mode, op }) => ({ op, mode, file: path.join(dir, `${mode}-${size}MiB-run1.cpuprofile`) }))
    .filter(({ file }) => fs.existsSync(file))
    .map(({ op, mode, file }) => renderProfile(`${mode} ${size} MiB`, file, op))
    .join("\n");
}

let opts: BenchOptions | null;
try {
  opts = parseOptions(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`bench: ${(e as Error).message}\n${USAGE}\n`);
  process.exit(2);
}
if (!opts) {
  process.stdout.write(USAGE + "\n");
  process.exit(0);
}

const cleanup = new Cleanup();
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(sig, () => {
    interrupted = true;
    process.stderr.write(`bench: ${sig}, cleaning up\n`);
    void cleanup.releaseAll().finally(() => process.exit(130));
  });
}
becomeSubreaper();
try {
  const report = await main(opts, cleanup);
  // The cleanup killed the victims under a running cycle: its figures and verdicts are not real.
  if (interrupted) throw new FerryError("FERRY_BENCH_INTERRUPTED", "interrupted: no report saved");
  const { json, table } = save(report, opts.outDir, profileSummary(opts));
  process.stdout.write(opts.json ? json : table);
  process.stderr.write(`bench: saved ${path.join(opts.outDir, "latest.json")} and latest.md\n`);
  if (report.sizes.some((s) => s.verdict !== "PASS") || (report.tree && report.tree.verdict !== "PASS") || (report.tcp && report.tcp.verdict !== "PASS") || (report.migrate && report.migrate.verdict !== "PASS") || (report.lazy && report.lazy.verdict !== "PASS")) {
    process.stderr.write("bench: a restored victim found itself wrong, or did not run (see the verdicts in latest.json)\n");
    process.exitCode = 1;
  }
} catch (e) {
  if (e instanceof FerryError) process.stderr.write(`bench: ${e.code}: ${e.message}\n`);
  else process.stderr.write(`bench: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exitCode = 1;
} finally {
  await cleanup.releaseAll();
}
