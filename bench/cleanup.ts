import fs from "node:fs";
import { NR, rawSyscall } from "../src/kernel/sys.js";

/**
 * Everything the benchmark creates (victims, runners, /dev/shm directories) is registered here the
 * moment it exists and released in reverse order on every path: success, error, Ctrl-C.
 */
export class Cleanup {
  private steps: { what: string; release: () => void | Promise<void> }[] = [];

  /** Returns a function that forgets the step (when it was released the ordinary way). */
  add(what: string, release: () => void | Promise<void>): () => void {
    const step = { what, release };
    this.steps.push(step);
    return () => {
      this.steps = this.steps.filter((s) => s !== step);
    };
  }

  /** Releases everything still registered; reports failures on stderr, never throws. */
  async releaseAll(): Promise<void> {
    const steps = this.steps.reverse();
    this.steps = [];
    for (const s of steps) {
      try {
        await s.release();
      } catch (e) {
        process.stderr.write(`bench: cleanup of ${s.what} failed: ${(e as Error).message}\n`);
      }
    }
  }
}

/**
 * Make orphans of our runners (a restored victim whose runner died) our children, so that we can
 * reap them instead of leaving them to PID 1, which reaps late (DESIGN.md §9).
 */
export function becomeSubreaper(): void {
  const PR_SET_CHILD_SUBREAPER = 36;
  rawSyscall(NR.prctl, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

/** The command name of a live process, or null. */
export function commOf(pid: number): string | null {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return null;
  }
}

/** The state letter of /proc/PID/stat (R, S, T, Z ...), or null when there is no such process. */
export function stateOf(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return null;
  }
}

/**
 * SIGKILL `pid` if it is still the process we think (its comm), then reap it if it became our child.
 * Waits up to `waitMs` for it to disappear.
 */
export async function killProcess(pid: number, comm: string, waitMs = 2000): Promise<void> {
  if (commOf(pid) !== comm) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch { /* gone */ }
  const WNOHANG = 1, WALL = 0x40000000;
  const deadline = performance.now() + waitMs;
  while (performance.now() < deadline) {
    const r = rawSyscall(NR.wait4, pid, null, WNOHANG | WALL, 0);
    if (r === BigInt(pid)) return; // reaped: it was ours (an orphan handed to us)
    const state = stateOf(pid);
    if (state === null) return; // its parent reaped it
    if (state === "Z" && r < 0n) return; // dead, and not ours to reap
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Remove a directory tree; used for /dev/shm work directories. */
export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}
