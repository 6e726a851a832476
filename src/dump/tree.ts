import fs from "node:fs";
import { listTasks, readStat, statField } from "../kernel/procfs.js";
import { getSigmask, setRegs, setSigmask } from "../kernel/ptrace.js";
import { seizeProcess, detachTask, validateTarget } from "./seize.js";
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

export interface SavedThread { tid: number; regs: Regs; restarted: boolean; sigmask: bigint }
/** A frozen process: its threads with the registers and mask they must get back. */
export interface FrozenProcess {
  pid: number;
  threads: SavedThread[];
  children: number[];
  /** a zombie child: nothing to freeze, only how it ended */
  zombie?: { ppid: number; pgid: number; sid: number; comm: string; exitStatus: number };
}

function freeze(pid: number): FrozenProcess {
  const tids = seizeProcess(pid);
  return { pid, threads: tids.map((tid) => ({ tid, ...threadRegs(tid), sigmask: getSigmask(tid) })), children: [] };
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
 * Freeze a process and every process below it, parents before children. A child forked while
 * its parent was being frozen is found on the next pass: the tree is read until it is stable.
 */
export function freezeTree(root: number): FrozenProcess[] {
  const frozen: FrozenProcess[] = [];
  try {
    frozen.push(freeze(root));
    for (let i = 0; i < frozen.length; i++) {
      frozen[i].children = childrenOf(frozen[i].pid);
      for (const child of frozen[i].children) {
        if (frozen.some((p) => p.pid === child)) continue;
        const stat = readStat(child);
        if (statField(stat, 3) === "Z") {
          const field = (n: number) => Number(statField(stat, n));
          frozen.push({
            pid: child, threads: [], children: [],
            zombie: { ppid: field(4), pgid: field(5), sid: field(6), comm: stat.comm, exitStatus: field(52) },
          });
          continue;
        }
        validateTarget(child);
        frozen.push(freeze(child));
      }
    }
    return frozen;
  } catch (e) {
    for (const p of frozen) release(p);
    throw e;
  }
}
