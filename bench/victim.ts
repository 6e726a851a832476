import fs from "node:fs";
import path from "node:path";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { FerryError } from "../src/errors.js";
import { REPO_ROOT } from "./options.js";
import type { Cleanup } from "./cleanup.js";

const SOURCE = path.join(REPO_ROOT, "bench/victims/sweeper.c");
const BUILD_DIR = path.join(REPO_ROOT, "bench/.build");
export const SWEEPER_COMM = "sweeper";

/** Compile bench/victims/sweeper.c into bench/.build/ when the binary is missing or older. */
export function buildSweeper(): string {
  const bin = path.join(BUILD_DIR, "sweeper");
  const fresh = fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= fs.statSync(SOURCE).mtimeMs;
  if (!fresh) {
    fs.mkdirSync(BUILD_DIR, { recursive: true });
    try {
      execFileSync("gcc", ["-O2", "-Wall", "-Wextra", "-Werror", "-o", bin, SOURCE], { stdio: ["ignore", "ignore", "pipe"] });
    } catch (e) {
      const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? (e as Error).message;
      throw new FerryError("FERRY_BENCH_BUILD", `cannot compile ${SOURCE} (is gcc installed?):\n${stderr}`);
    }
  }
  return bin;
}

/** What the sweeper writes to its ready file. */
interface ReadyLine {
  pid: number;
  addr: number;
  bytes: number;
  pages: number;
}

/**
 * The benchmark's victim: `mib` MiB of memory, every page with its own content, swept and
 * rewritten in a loop; on SIGTERM it checks every page and writes PASS or FAIL to its result file.
 */
export class Sweeper {
  private constructor(
    readonly child: ChildProcess,
    readonly ready: ReadyLine,
    readonly resultFile: string,
    /** the original process ended (after the dump killed it), and its PID is free again */
    readonly exited: Promise<void>,
  ) {}

  get pid(): number {
    return this.ready.pid;
  }

  /**
   * Start it pinned to `cpu`, with only /dev/null as fds 0-2 (nothing ferry should not have to dump),
   * and wait until all its memory is touched.
   */
  static async start(bin: string, mib: number, workDir: string, cpu: number, cleanup: Cleanup): Promise<Sweeper> {
    const readyFile = path.join(workDir, "ready.json");
    const resultFile = path.join(workDir, "result.txt");
    // taskset execs the sweeper: the PID we get is the sweeper's.
    const child = spawn("taskset", ["-c", String(cpu), bin, String(mib), readyFile, resultFile], { stdio: "ignore", cwd: workDir });
    const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
    const spawned = new Promise<void>((resolve, reject) => {
      child.on("spawn", resolve);
      child.on("error", reject);
    });
    await spawned;
    cleanup.add(`sweeper ${child.pid}`, async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    });
    const deadline = performance.now() + 30_000 + mib * 100;
    while (!fs.existsSync(readyFile)) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new FerryError("FERRY_BENCH_VICTIM", `sweeper ${mib} MiB ended (${child.exitCode ?? child.signalCode}) before it was ready`);
      }
      if (performance.now() > deadline) throw new FerryError("FERRY_BENCH_TIMEOUT", `sweeper ${mib} MiB not ready in time`);
      await sleep(5);
    }
    const ready = JSON.parse(fs.readFileSync(readyFile, "utf8")) as ReadyLine;
    if (ready.pid !== child.pid) throw new FerryError("FERRY_BENCH_VICTIM", `sweeper reports PID ${ready.pid}, spawned ${child.pid}`);
    return new Sweeper(child, ready, resultFile, exited);
  }

  /** The verdict line the victim wrote on SIGTERM ("PASS ..." / "FAIL ..."), or a description of why there is none. */
  verdict(): string {
    try {
      return fs.readFileSync(this.resultFile, "utf8").trim();
    } catch {
      return "FAIL no result file: the victim did not check its memory";
    }
  }
}

/** CPU time (clock ticks, user + system) a process has used: proof that it runs. */
export function cpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
