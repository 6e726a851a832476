import fs from "node:fs";
import path from "node:path";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { FerryError } from "../src/errors.js";
import { readStat, statField } from "../src/kernel/procfs.js";
import { REPO_ROOT } from "./options.js";
import { killTree, type Cleanup } from "./cleanup.js";

const BUILD_DIR = path.join(REPO_ROOT, "bench/.build");

/** Compile bench/victims/<name>.c into bench/.build/<name> when the binary is missing or older than it or a header. */
export function buildVictim(name: string): string {
  const source = path.join(REPO_ROOT, `bench/victims/${name}.c`);
  const bin = path.join(BUILD_DIR, name);
  const headers = fs.readdirSync(path.dirname(source)).filter((f) => f.endsWith(".h")).map((f) => path.join(path.dirname(source), f));
  const newest = Math.max(...[source, ...headers].map((f) => fs.statSync(f).mtimeMs));
  const fresh = fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= newest;
  if (!fresh) {
    fs.mkdirSync(BUILD_DIR, { recursive: true });
    try {
      execFileSync("gcc", ["-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", bin, source], { stdio: ["ignore", "ignore", "pipe"] });
    } catch (e) {
      const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? (e as Error).message;
      throw new FerryError("FERRY_BENCH_BUILD", `cannot compile ${source} (is gcc installed?):\n${stderr}`);
    }
  }
  return bin;
}

/** The benchmark's victim programs, compiled. */
export interface VictimBins {
  sweeper: string;
  treesweeper: string;
  tcpconns: string;
}

export function buildVictims(): VictimBins {
  return { sweeper: buildVictim("sweeper"), treesweeper: buildVictim("treesweeper"), tcpconns: buildVictim("tcpconns") };
}

/** What a benchmark cycle needs of its victim, whatever it is. */
export interface BenchVictim {
  /** the process ferry dumps: the root of the victim's tree */
  readonly pid: number;
  /** every process of the tree, root first */
  readonly pids: readonly number[];
  /** their command name: a PID is only ever killed while it still has this name */
  readonly comm: string;
  /** it keeps its CPU busy: a restored copy that used no CPU did not run */
  readonly busy: boolean;
  /** memory the physical-limit probes may read while it is stopped, if it has one such block */
  readonly probe: { addr: number; bytes: number } | null;
  /** the original root ended (after the dump killed it), and its PID is free again */
  readonly exited: Promise<void>;
  /** The verdict line it wrote after SIGTERM ("PASS ..." / "FAIL ..."), or why there is none. */
  verdict(): string;
}

/**
 * Start `bin` pinned to `cpu` with only /dev/null as fds 0-2 (nothing ferry should not have to
 * dump), and wait for its ready file. `args` gets the ready and result file names. Every process
 * it reports in its ready line is killed by `cleanup` unless the cycle got rid of them first.
 */
async function launch<Ready extends { pid?: number; pids?: number[] }>(
  comm: string, bin: string, args: (readyFile: string, resultFile: string) => string[],
  workDir: string, cpu: number, cleanup: Cleanup, timeoutMs: number,
): Promise<{ ready: Ready; pids: number[]; resultFile: string; exited: Promise<void> }> {
  const readyFile = path.join(workDir, "ready.json");
  const resultFile = path.join(workDir, "result.txt");
  // taskset execs the victim: the PID we get is the victim's.
  const child: ChildProcess = spawn("taskset", ["-c", String(cpu), bin, ...args(readyFile, resultFile)], { stdio: "ignore", cwd: workDir });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.on("spawn", resolve);
    child.on("error", reject);
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  let pids = [child.pid!];
  cleanup.add(`${comm} ${child.pid}`, async () => {
    // The root first: its children die with it (PR_SET_PDEATHSIG) and come to us, a subreaper, to be reaped.
    if (running()) child.kill("SIGKILL");
    await exited;
    await killTree(pids.slice(1), comm);
  });
  const deadline = performance.now() + timeoutMs;
  while (!fs.existsSync(readyFile)) {
    if (!running()) {
      const why = fs.existsSync(resultFile) ? `: ${readVerdict(resultFile)}` : "";
      throw new FerryError("FERRY_BENCH_VICTIM", `${comm} ended (${child.exitCode ?? child.signalCode}) before it was ready${why}`);
    }
    if (performance.now() > deadline) throw new FerryError("FERRY_BENCH_TIMEOUT", `${comm} not ready within ${timeoutMs} ms`);
    await sleep(5);
  }
  const ready = JSON.parse(fs.readFileSync(readyFile, "utf8")) as Ready;
  pids = ready.pids ?? [ready.pid!];
  if (pids[0] !== child.pid) throw new FerryError("FERRY_BENCH_VICTIM", `${comm} reports PID ${pids[0]}, spawned ${child.pid}`);
  return { ready, pids, resultFile, exited };
}

/** The verdict line a victim wrote after SIGTERM, or a FAIL line saying it wrote none. */
export function readVerdict(resultFile: string): string {
  try {
    return fs.readFileSync(resultFile, "utf8").trim();
  } catch {
    return "FAIL no result file: the victim did not check itself";
  }
}

/**
 * bench/victims/sweeper.c: `mib` MiB of memory, every page with its own content, swept and
 * rewritten in a loop; on SIGTERM it checks every page and writes PASS or FAIL to its result file.
 */
export class Sweeper implements BenchVictim {
  readonly comm = "sweeper";
  readonly busy = true;

  private constructor(
    readonly pid: number,
    readonly probe: { addr: number; bytes: number },
    private readonly resultFile: string,
    readonly exited: Promise<void>,
  ) {}

  get pids(): number[] {
    return [this.pid];
  }

  static async start(bin: string, mib: number, workDir: string, cpu: number, cleanup: Cleanup): Promise<Sweeper> {
    const { ready, resultFile, exited } = await launch<{ pid: number; addr: number; bytes: number }>(
      "sweeper", bin, (readyFile, resultFile) => [String(mib), readyFile, resultFile], workDir, cpu, cleanup, 30_000 + mib * 100);
    return new Sweeper(ready.pid, { addr: ready.addr, bytes: ready.bytes }, resultFile, exited);
  }

  verdict(): string {
    return readVerdict(this.resultFile);
  }
}

/** The shape of a tree victim: `processes` × `threads` threads, `mib` MiB of memory per process. */
export interface TreeShape {
  processes: number;
  threads: number;
  mib: number;
}

/**
 * bench/victims/treesweeper.c: a root and its children, each process with several threads that
 * sweep their own slice of its memory; on SIGTERM to the root, every process checks its pages,
 * TIDs and parent, and the root writes one verdict for the tree.
 */
export class TreeSweeper implements BenchVictim {
  readonly comm = "treesweeper";
  readonly busy = true;
  readonly probe = null;

  private constructor(readonly pids: number[], private readonly resultFile: string, readonly exited: Promise<void>) {}

  get pid(): number {
    return this.pids[0];
  }

  static async start(bin: string, shape: TreeShape, workDir: string, cpu: number, cleanup: Cleanup): Promise<TreeSweeper> {
    const args = (readyFile: string, resultFile: string) => [String(shape.processes), String(shape.threads), String(shape.mib), readyFile, resultFile];
    const { ready, pids, resultFile, exited } = await launch<{ pids: number[]; threads: number }>(
      "treesweeper", bin, args, workDir, cpu, cleanup, 30_000 + shape.processes * shape.mib * 100);
    if (pids.length !== shape.processes || ready.threads !== shape.processes * shape.threads) {
      throw new FerryError("FERRY_BENCH_VICTIM", `treesweeper reports ${pids.length} processes and ${ready.threads} threads, asked for ${shape.processes} × ${shape.threads}`);
    }
    return new TreeSweeper(pids, resultFile, exited);
  }

  verdict(): string {
    return readVerdict(this.resultFile);
  }
}

/**
 * bench/victims/tcpconns.c: `connections` established loopback TCP connections, both ends in the
 * one process, a few bytes queued on some; on SIGTERM it checks that every one carries data both ways.
 */
export class TcpConns implements BenchVictim {
  readonly comm = "tcpconns";
  /** it sleeps until SIGTERM: its verdict, written after the restore, proves that it ran */
  readonly busy = false;
  readonly probe = null;

  private constructor(
    readonly pid: number,
    /** sockets it holds: both ends of every connection and the listener */
    readonly sockets: number,
    /** connections with bytes queued in one direction or both */
    readonly queued: number,
    private readonly resultFile: string,
    readonly exited: Promise<void>,
  ) {}

  get pids(): number[] {
    return [this.pid];
  }

  static async start(bin: string, connections: number, workDir: string, cpu: number, cleanup: Cleanup): Promise<TcpConns> {
    const { ready, resultFile, exited } = await launch<{ pid: number; connections: number; sockets: number; queued: number }>(
      "tcpconns", bin, (readyFile, resultFile) => [String(connections), readyFile, resultFile], workDir, cpu, cleanup, 30_000 + connections * 10);
    if (ready.connections !== connections) {
      throw new FerryError("FERRY_BENCH_VICTIM", `tcpconns reports ${ready.connections} connections, asked for ${connections}`);
    }
    return new TcpConns(ready.pid, ready.sockets, ready.queued, resultFile, exited);
  }

  verdict(): string {
    return readVerdict(this.resultFile);
  }
}

/** CPU time (clock ticks, user + system, all threads) a process has used: proof that it runs. 0 if it is gone. */
export function cpuTicks(pid: number): number {
  try {
    const stat = readStat(pid);
    return Number(statField(stat, 14)) + Number(statField(stat, 15)); // utime, stime
  } catch {
    return 0;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
