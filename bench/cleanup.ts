import fs from "node:fs";
import { processState } from "../src/kernel/procfs.js";
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

/** Remove a directory tree; used for /dev/shm work directories. */
export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * SIGKILL every process of `pids` that still has the name `comm`, and wait (up to `waitMs`) until
 * each is gone: reaped by its parent, or by us when it was handed to us (we are a subreaper).
 */
export async function killTree(pids: readonly number[], comm: string, waitMs = 3000): Promise<void> {
  const mine = pids.filter((pid) => commOf(pid) === comm);
  for (const pid of mine) {
    try {
      process.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  const WNOHANG = 1, WALL = 0x40000000;
  const deadline = performance.now() + waitMs;
  let left = mine;
  while (left.length && performance.now() < deadline) {
    // A zombie whose parent is still there is its parent's to reap; once the parent dies, it is ours.
    left = left.filter((pid) => rawSyscall(NR.wait4, pid, null, WNOHANG | WALL, 0) !== BigInt(pid) && processState(pid) !== null);
    if (left.length) await new Promise((r) => setTimeout(r, 10));
  }
}
