import path from "node:path";
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { FerryError } from "../src/errors.js";
import { REPO_ROOT } from "./options.js";

const RUNNER = path.join(REPO_ROOT, "dist/bench/runner.js");

/** A report line from a runner and when (performance.now() of the benchmark) it arrived. */
export interface Received<T> {
  report: T;
  atMs: number;
}

/** Starts a command: child_process.spawn here, or a test host's spawn (inside its namespaces). */
export type Launch = (argv: string[], opts: SpawnOptions) => ChildProcess;
const here: Launch = (argv, opts) => spawn(argv[0], argv.slice(1), opts);

/**
 * A runner (bench/runner.ts) in its own Node process, pinned with taskset to the benchmark's CPU.
 * Its stdout is a stream of JSON reports; stderr is kept for error messages.
 */
export class RunnerProcess {
  readonly child: ChildProcess;
  /** performance.now() just before the spawn: whole-command times count from here */
  readonly startedAtMs: number;
  readonly exited: Promise<{ code: number | null; signal: string | null; atMs: number }>;
  private reports: Received<{ event: string }>[] = [];
  private wake: (() => void) | null = null;
  private stderr = "";
  private closed = false;

  /** `script`: another runner than bench/runner.ts (bench/lazyRunner.ts) */
  constructor(readonly mode: string, args: string[], cpu: number | string, nodeFlags: string[] = [], launch: Launch = here, script = RUNNER) {
    this.startedAtMs = performance.now();
    this.child = launch(["taskset", "-c", String(cpu), process.execPath, ...nodeFlags, script, mode, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      cwd: REPO_ROOT,
    });
    let pending = "";
    this.child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      const atMs = performance.now();
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.trim()) this.reports.push({ report: JSON.parse(line), atMs });
      }
      this.wake?.();
    });
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr += chunk;
    });
    // Timed at "exit"; settled at "close", once every report line has been read.
    let exitAtMs = 0;
    this.child.on("exit", () => {
      exitAtMs = performance.now();
    });
    this.exited = new Promise((resolve, reject) => {
      this.child.on("error", reject);
      this.child.on("close", (code, signal) => {
        this.closed = true;
        resolve({ code, signal, atMs: exitAtMs || performance.now() });
        this.wake?.();
      });
    });
  }

  /** The next report of kind `event`; fails if the runner exits first or `timeoutMs` passes. */
  async next<T>(event: string, timeoutMs: number): Promise<Received<T>> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const i = this.reports.findIndex((r) => r.report.event === event);
      if (i >= 0) return this.reports.splice(i, 1)[0] as Received<T>;
      if (this.closed) {
        throw new FerryError("FERRY_BENCH_RUNNER", `${this.mode} runner ended (${this.child.exitCode ?? this.child.signalCode}) without "${event}":\n${this.stderr.trim()}`);
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new FerryError("FERRY_BENCH_TIMEOUT", `${this.mode} runner: no "${event}" within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          this.wake = null;
          resolve();
        };
      });
    }
  }

  /** Waits for the runner to end by itself; fails on a non-zero exit. */
  async finished(timeoutMs: number): Promise<number> {
    const timer = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new FerryError("FERRY_BENCH_TIMEOUT", `${this.mode} runner did not end within ${timeoutMs} ms`)), timeoutMs).unref());
    const { code, signal, atMs } = await Promise.race([this.exited, timer]);
    if (code !== 0) throw new FerryError("FERRY_BENCH_RUNNER", `${this.mode} runner failed (${code ?? signal}):\n${this.stderr.trim()}`);
    return atMs;
  }

  /** Kill it (if it still runs) and wait until it is gone. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    // "close" also waits for anything that inherited its pipes: do not hang on that.
    await Promise.race([this.exited.catch(() => undefined), new Promise((r) => setTimeout(r, 3000).unref())]);
  }
}
