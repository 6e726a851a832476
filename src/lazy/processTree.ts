import { NR, SIG, rawSyscall, sleepSync } from "../kernel/sys.js";
import { childrenOf } from "../dump/tree.js";
import { processState } from "../kernel/procfs.js";

/** PIDs of every descendant of pid. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    let kids: number[];
    try {
      kids = childrenOf(queue.shift()!);
    } catch {
      continue; // gone
    }
    out.push(...kids);
    queue.push(...kids);
  }
  return out;
}

/**
 * SIGKILL `root`, its descendants and `others`, and wait (up to `waitMs`) until none of them runs
 * any more (gone, or a zombie): whoever is told next that the copy here is dead (the source, which
 * then lets its own copy run) must never see both run. Returns those that were there to kill.
 */
export function killTree(root: number, others: number[] = [], waitMs = 2000): number[] {
  const pids = new Set([root, ...descendants(root), ...others].filter((p) => p > 0));
  const killed: number[] = [];
  for (const p of pids) if (rawSyscall(NR.kill, p, SIG.KILL) === 0n) killed.push(p);
  const deadline = performance.now() + waitMs;
  while (killed.some(stillRuns) && performance.now() < deadline) sleepSync(1);
  return killed;
}

/** The task exists and is not a zombie (a SIGKILLed task runs no user code, but is not yet gone). */
function stillRuns(pid: number): boolean {
  const state = processState(pid);
  return state !== null && state !== "Z" && state !== "X";
}
