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

/** SIGKILL `root`, its descendants and `others`; returns those that were there to kill. */
export function killTree(root: number, others: number[] = []): number[] {
  const pids = new Set([root, ...descendants(root), ...others].filter((p) => p > 0));
  const killed: number[] = [];
  for (const p of pids) if (rawSyscall(NR.kill, p, SIG.KILL) === 0n) killed.push(p);
  return killed;
}
