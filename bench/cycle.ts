import fs from "node:fs";
import path from "node:path";
import { FerryError } from "../src/errors.js";
import { Cleanup, killTree, removeDir } from "./cleanup.js";
import { processState } from "../src/kernel/procfs.js";
import { RunnerProcess } from "./children.js";
import { cpuTicks, sleep, type BenchVictim } from "./victim.js";
import type { Limits } from "./limits.js";
import type { DumpReport, ExitReport, RestoreReport, WarmReport } from "./runner.js";

/** One victim, dumped then restored, as seen by the benchmark. Times in ms, sizes in bytes. */
export interface CycleResult {
  /** memory the victim touched (all its processes) */
  sizeMiB: number;
  /** processes in the victim's tree */
  processes: number;
  dump: {
    /** the dump() call, Node start-up excluded */
    opMs: number;
    /** from freeze to the end of the dump (the victim is killed at the end) */
    frozenMs: number;
    /** CPU time of the dump process during the call */
    opCpuMs: number;
    /** spawn of the runner to its exit: what a user of `ferry dump` waits */
    commandMs: number;
    pages: number;
    zeroPagesSkipped: number;
    imageBytes: number;
    injectedSyscalls: number;
    rssBeforeMiB: number;
    peakRssMiB: number;
  };
  restore: {
    /** the restore() call: when it returns, the process runs */
    opMs: number;
    /** CPU time of the restore process during the call */
    opCpuMs: number;
    /** spawn of the runner to its report: what a user of `ferry restore -d` waits */
    commandMs: number;
    bytes: number;
    injectedSyscalls: number;
    rssBeforeMiB: number;
    peakRssMiB: number;
  };
  downtime: {
    /** dump frozen time + restore time: the victim does not exist in between */
    frozenPlusRestoreMs: number;
    /** freeze to running again as it happened here, with the restore runner's Node start-up in between */
    endToEndMs: number;
  };
  /** the memory touched and freed just before the cycle, or null with --cold */
  warm: Omit<WarmReport, "event"> | null;
  victim: {
    verdict: string;
    pass: boolean;
    /** CPU ticks the restored victim (all its processes) used while it was left to run: > 0 proves a busy one ran */
    cpuTicksAfterRestore: number;
  };
}

export interface CycleContext {
  cpu: number;
  /** CPUs for the dump and restore runners (taskset list) */
  ferryCpus: string;
  settleMs: number;
  /** MiB of memory to touch and free before the victim starts (0: none) */
  warmMiB: number;
  /** bytes the physical-limit probes move, when this cycle should measure them (on a victim with a probe block) */
  limitBytes: number | null;
  /** extra node flags for a runner (profiling) */
  nodeFlags: (mode: string) => string[];
  /** the benchmark's own cleanup: this cycle's resources are registered there until released */
  cleanup: Cleanup;
}

const OP_TIMEOUT_MS = 120_000;
/** Work directories are /dev/shm/ferry-bench-<benchmark PID>-XXXXXX. */
const WORK_PREFIX = "/dev/shm/ferry-bench-";

/**
 * Remove work directories of benchmarks that no longer run (killed with SIGKILL, which leaves no
 * chance to clean up). Directories of a live benchmark are left alone.
 */
export function removeStaleWorkDirs(): string[] {
  const removed: string[] = [];
  for (const name of fs.readdirSync(path.dirname(WORK_PREFIX))) {
    const m = /^ferry-bench-(\d+)-/.exec(name);
    if (!m || fs.existsSync(`/proc/${m[1]}`)) continue;
    removeDir(path.join(path.dirname(WORK_PREFIX), name));
    removed.push(name);
  }
  return removed;
}

/** Starts the victim in `workDir`, its resources registered with `cleanup`. */
export type StartVictim = (workDir: string, cpu: number, cleanup: Cleanup) => Promise<BenchVictim>;

/** Start a victim, let it run, dump it, restore it, let it run, stop it and read its verdict. */
export async function runCycle(ctx: CycleContext, label: string, sizeMiB: number, startVictim: StartVictim): Promise<{ cycle: CycleResult; limits: Limits | null }> {
  const local = new Cleanup();
  const forget = ctx.cleanup.add(`${label} cycle`, () => local.releaseAll());
  try {
    const workDir = fs.mkdtempSync(`${WORK_PREFIX}${process.pid}-`);
    local.add(`work dir ${workDir}`, () => removeDir(workDir));
    const images = path.join(workDir, "images");
    const warm = ctx.warmMiB ? await warmMemory(ctx.cpu, ctx.warmMiB, local) : null;
    const victim = await startVictim(workDir, ctx.cpu, local);
    await sleep(ctx.settleMs);

    const limits = ctx.limitBytes && victim.probe ? await measureLimits(ctx, victim, Math.min(ctx.limitBytes, victim.probe.bytes), workDir, local) : null;

    const dumper = new RunnerProcess("dump", ["--pid", String(victim.pid), "--images", images], ctx.ferryCpus, ctx.nodeFlags("dump"));
    local.add("dump runner", () => dumper.stop());
    const dumped = await dumper.next<DumpReport>("dumped", OP_TIMEOUT_MS);
    const dumpExitAt = await dumper.finished(OP_TIMEOUT_MS);
    await withTimeout(victim.exited, 10_000, "the dumped victim did not go away");
    const imageBytes = fs.readdirSync(images).reduce((s, f) => s + fs.statSync(path.join(images, f)).size, 0);

    // The restored root is the restore runner's child, with the original PID; its children are its own again.
    const restorer = new RunnerProcess("restore", ["--images", images], ctx.ferryCpus, ctx.nodeFlags("restore"));
    local.add("restore runner", () => restorer.stop());
    local.add(`restored ${victim.comm} ${victim.pid}`, () => killTree(victim.pids, victim.comm));
    const restored = await restorer.next<RestoreReport>("restored", OP_TIMEOUT_MS);
    const ticksOfTree = () => victim.pids.reduce((sum, pid) => sum + cpuTicks(pid), 0);
    const ticks = ticksOfTree();
    await sleep(ctx.settleMs);
    const cpuTicksAfterRestore = ticksOfTree() - ticks;
    process.kill(victim.pid, "SIGTERM"); // it checks itself (the root its whole tree), writes its verdict, exits
    const exited = await restorer.next<ExitReport>("exited", OP_TIMEOUT_MS);
    await restorer.finished(10_000);
    const verdict = victim.verdict();

    const d = dumped.report, r = restored.report;
    const cycle: CycleResult = {
      sizeMiB,
      processes: victim.pids.length,
      dump: {
        opMs: d.opMs, frozenMs: d.frozenMs, opCpuMs: d.opCpuMs, commandMs: dumpExitAt - dumper.startedAtMs,
        pages: d.pages, zeroPagesSkipped: d.zeroPagesSkipped, imageBytes, injectedSyscalls: d.injectedSyscalls,
        rssBeforeMiB: d.rssBeforeMiB, peakRssMiB: d.peakRssMiB,
      },
      restore: {
        opMs: r.opMs, opCpuMs: r.opCpuMs, commandMs: restored.atMs - restorer.startedAtMs, bytes: r.bytes,
        injectedSyscalls: r.injectedSyscalls, rssBeforeMiB: r.rssBeforeMiB, peakRssMiB: r.peakRssMiB,
      },
      downtime: {
        frozenPlusRestoreMs: d.frozenMs + r.opMs,
        endToEndMs: r.runningAtEpochMs - d.frozenAtEpochMs,
      },
      warm,
      victim: {
        verdict,
        pass: verdict.startsWith("PASS") && exited.report.code === 0 && (cpuTicksAfterRestore > 0 || !victim.busy),
        cpuTicksAfterRestore,
      },
    };
    return { cycle, limits };
  } finally {
    await local.releaseAll();
    forget();
  }
}

/** Touch and free `mib` MiB (bench/runner.ts, runWarm) on `cpu`. */
export async function warmMemory(cpu: number, mib: number, local: Cleanup): Promise<Omit<WarmReport, "event">> {
  const warmer = new RunnerProcess("warm", ["--mib", String(mib)], cpu);
  local.add("warm runner", () => warmer.stop());
  const { report } = await warmer.next<WarmReport>("warmed", OP_TIMEOUT_MS);
  await warmer.finished(10_000); // its memory is free again once it has exited
  const { event: _event, ...warm } = report;
  return warm;
}

/** Physical limits, measured while the victim is stopped so that it does not share the CPU. */
async function measureLimits(ctx: CycleContext, victim: BenchVictim, bytes: number, scratchDir: string, local: Cleanup): Promise<Limits> {
  process.kill(victim.pid, "SIGSTOP");
  const resume = () => void process.kill(victim.pid, "SIGCONT");
  const forgetResume = local.add("SIGCONT victim", resume);
  try {
    for (let state = processState(victim.pid); state !== "T"; state = processState(victim.pid)) {
      if (state === null || state === "Z") throw new FerryError("FERRY_BENCH_VICTIM", `${victim.comm} ${victim.pid} died before the limits were measured`);
      await sleep(1);
    }
    const prober = new RunnerProcess("limits", [
      "--pid", String(victim.pid), "--addr", String(victim.probe!.addr), "--bytes", String(bytes), "--scratch", scratchDir,
    ], ctx.cpu);
    local.add("limits runner", () => prober.stop());
    const { report } = await prober.next<Limits & { event: string }>("limits", OP_TIMEOUT_MS);
    await prober.finished(10_000);
    const { event: _event, ...limits } = report;
    return limits;
  } finally {
    forgetResume();
    resume();
    await sleep(ctx.settleMs);
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FerryError("FERRY_BENCH_TIMEOUT", `${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
