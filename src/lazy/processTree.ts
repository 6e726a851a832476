import fs from "node:fs";
import { NR, SIG, rawSyscall } from "../kernel/sys.js";

/** PIDs of every descendant of pid (found through /proc/PID/task/TID/children). */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    let tasks: string[] = [];
    try {
      tasks = fs.readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      let kids = "";
      try {
        kids = fs.readFileSync(`/proc/${p}/task/${t}/children`, "utf8");
      } catch { /* gone */ }
      for (const k of kids.split(" ").filter(Boolean).map(Number)) {
        out.push(k);
        queue.push(k);
      }
    }
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
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const deadline = performance.now() + waitMs;
  while (killed.some(stillRuns) && performance.now() < deadline) Atomics.wait(pause, 0, 0, 1);
  return killed;
}

/** The task exists and is not a zombie (a SIGKILLed task runs no user code, but is not yet gone). */
function stillRuns(pid: number): boolean {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}
