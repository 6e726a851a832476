import fs from "node:fs";
import { listTasks, readStat, statField } from "../kernel/procfs.js";
import { getSigmask, setRegs, setSigmask } from "../kernel/ptrace.js";
import { seizeTasks, detachTask, validateTarget } from "./seize.js";
import { threadRegs } from "./core.js";
import type { Regs } from "../kernel/ptrace.js";

/** The children of a process, from every thread's children list. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const tid of listTasks(pid)) {
    let text = "";
    try {
      text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8");
    } catch { /* thread gone */ }
    for (const c of text.trim().split(/\s+/).filter(Boolean)) out.push(Number(c));
  }
  return out.sort((a, b) => a - b);
}

/** The process of `tree` that `pid` is a child of (as the tree was frozen). */
export function parentIn(tree: FrozenProcess[], pid: number): FrozenProcess | undefined {
  return tree.find((q) => q.pid !== pid && q.children.includes(pid));
}

export interface SavedThread { tid: number; regs: Regs; restarted: boolean; sigmask: bigint }
/** A frozen process: its threads with the registers and mask they must get back. */
export interface FrozenProcess {
  pid: number;
  threads: SavedThread[];
  children: number[];
  /** a zombie child: nothing to freeze, only how it ended */
  zombie?: { ppid: number; pgid: number; sid: number; comm: string; exitStatus: number };
}

/** Let a frozen process go exactly as it was (a failed dump must not hurt it). */
export function release(p: FrozenProcess, signalMain = 0): void {
  for (const t of p.threads) {
    try {
      setRegs(t.tid, t.regs);
      setSigmask(t.tid, t.sigmask);
      detachTask(t.tid, t.tid === p.pid ? signalMain : 0);
    } catch { /* gone */ }
  }
}

/**
 * Freeze a process and every process below it, all at once: every thread of the tree is
 * interrupted before ferry waits for any (see seizeTasks). Processes and threads created
 * meanwhile are found on the next pass; the tree is read until it is stable. Parents come
 * before their children in the result.
 */
export function freezeTree(root: number): FrozenProcess[] {
  const byPid = new Map<number, FrozenProcess>();
  const order: number[] = [];
  const frozenTids = new Set<number>();
  try {
    for (;;) {
      const fresh: number[] = [];
      const owner = new Map<number, FrozenProcess>();
      for (let queue = [root]; queue.length; ) {
        const pid = queue.shift()!;
        let p = byPid.get(pid);
        if (!p) {
          const stat = readStat(pid);
          if (statField(stat, 3) === "Z" && pid !== root) {
            const field = (n: number) => Number(statField(stat, n));
            p = { pid, threads: [], children: [], zombie: { ppid: field(4), pgid: field(5), sid: field(6), comm: stat.comm, exitStatus: field(52) } };
          } else {
            if (pid !== root) validateTarget(pid);
            p = { pid, threads: [], children: [] };
          }
          byPid.set(pid, p);
          order.push(pid);
        }
        if (p.zombie) continue;
        for (const tid of listTasks(pid)) {
          if (!frozenTids.has(tid)) {
            fresh.push(tid);
            owner.set(tid, p);
          }
        }
        queue.push(...childrenOf(pid));
      }
      if (!fresh.length) break;
      for (const tid of seizeTasks(fresh)) {
        frozenTids.add(tid);
        owner.get(tid)!.threads.push({ tid, ...threadRegs(tid), sigmask: getSigmask(tid) });
      }
    }
    const tree = order.map((pid) => byPid.get(pid)!).filter((p) => p.zombie || p.threads.length);
    for (const p of tree) {
      p.children = p.zombie ? [] : childrenOf(p.pid);
      p.threads.sort((a, b) => (a.tid === p.pid ? -1 : b.tid === p.pid ? 1 : a.tid - b.tid));
    }
    return tree;
  } catch (e) {
    for (const p of byPid.values()) release(p);
    throw e;
  }
}
