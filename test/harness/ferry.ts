import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import fs from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";

/** The compiled CLI, found from this file (dist/test/harness -> dist/src/cli/main.js). */
export const FERRY_CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src/cli/main.js");

export interface FerryRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run one ferry command to its end. */
export function ferry(args: string[], timeoutMs = 60_000): Promise<FerryRun> {
  return startFerry(args, timeoutMs).done;
}

export interface RunningFerry {
  child: ChildProcess;
  /** resolves when ferry writes its --status-fd byte (pass statusFd: true) */
  ready: Promise<void>;
  done: Promise<FerryRun>;
}

/**
 * Start ferry in the background. With `statusFd`, `--status-fd 3` is added and `ready` resolves
 * on its byte (or rejects if ferry ends first).
 */
export function startFerry(args: string[], timeoutMs = 60_000, statusFd = false): RunningFerry {
  const fullArgs = statusFd ? [...args, "--status-fd", "3"] : args;
  const child = spawn(process.execPath, [FERRY_CLI, ...fullArgs], {
    stdio: ["ignore", "pipe", "pipe", statusFd ? "pipe" : "ignore"],
  });
  let stdout = "", stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const done = new Promise<FerryRun>((resolve) => {
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  const ready = new Promise<void>((resolve, reject) => {
    if (!statusFd) return resolve();
    const s = child.stdio[3] as NodeJS.ReadableStream;
    s.once("data", () => resolve());
    done.then((r) => reject(new Error(`ferry ${args.join(" ")} ended (code ${r.code}) before it was ready: ${r.stderr.trim()}`)));
  });
  ready.catch(() => {});
  return { child, ready, done };
}

export function tempDir(prefix = "ferry-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Wait until no process has this PID (a killed victim is reaped by its parent). */
export async function waitPidGone(pid: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (fs.existsSync(`/proc/${pid}`)) {
    if (Date.now() > until) throw new Error(`PID ${pid} still exists after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Dump a process this test started (ferry kills it), wait until its PID is free, restore it in
 * the foreground; resolves once it runs again, with the running `ferry restore`.
 */
export async function dumpAndRestore(pid: number, exited: Promise<unknown>, images: string): Promise<RunningFerry> {
  const dumped = await ferry(["dump", String(pid), "-D", images]);
  if (dumped.code !== 0) throw new Error(`ferry dump ${pid} -D ${images} failed: ${dumped.stderr}`);
  await exited;
  await waitPidGone(pid);
  const restored = startFerry(["restore", "-D", images], 60_000, true);
  await restored.ready;
  return restored;
}
