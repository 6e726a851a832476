import fs from "node:fs";
import { FerryError } from "../errors.js";
import { PTRACE, PTRACE_O, PTRACE_EVENT_STOP, ptrace, waitStop } from "../kernel/ptrace.js";
import { listTasks, processExists, readStat, statField } from "../kernel/procfs.js";
import { SyscallError } from "../kernel/sys.js";

const PF_KTHREAD = 0x00200000;

/** Refuse what cannot be dumped, with one clear line each. */
export function validateTarget(pid: number): void {
  if (!Number.isInteger(pid) || pid <= 0) throw new FerryError("FERRY_BAD_PID", `not a process ID: ${pid}`);
  if (pid === process.pid) throw new FerryError("FERRY_SELF", `PID ${pid} is ferry itself: ferry cannot dump its own process`);
  if (!processExists(pid)) throw new FerryError("FERRY_NO_PROCESS", `no process with PID ${pid}`);
  const stat = readStat(pid);
  if (Number(statField(stat, 9)) & PF_KTHREAD) {
    throw new FerryError("FERRY_KTHREAD", `PID ${pid} (${stat.comm}) is a kernel thread: only user processes can be dumped`);
  }
  let exe = "";
  try {
    exe = fs.readlinkSync(`/proc/${pid}/exe`);
  } catch {
    /* zombies and kernel threads have none */
  }
  if (statField(stat, 3) === "Z" || statField(stat, 3) === undefined) {
    throw new FerryError("FERRY_ZOMBIE", `PID ${pid} (${stat.comm}) is a zombie: there is nothing left to dump`);
  }
  if (!exe) throw new FerryError("FERRY_KTHREAD", `PID ${pid} (${stat.comm}) has no executable: only user processes can be dumped`);
}

/**
 * Freeze every thread of a process. Threads may be created while ferry seizes the others: read
 * the task list again until it holds no thread that is not frozen yet.
 */
export function seizeProcess(pid: number): number[] {
  const frozen: number[] = [];
  try {
    for (;;) {
      const fresh = listTasks(pid).filter((t) => !frozen.includes(t));
      if (!fresh.length) return frozen.sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
      for (const tid of fresh) {
        seizeTask(tid);
        frozen.push(tid);
      }
    }
  } catch (e) {
    for (const tid of frozen) {
      try {
        detachTask(tid);
      } catch { /* gone */ }
    }
    throw e;
  }
}

/**
 * Freeze a task: PTRACE_SEIZE + PTRACE_INTERRUPT, wait for the interrupt stop. A signal that
 * arrives meanwhile is delivered, not lost.
 */
export function seizeTask(tid: number): void {
  try {
    ptrace(PTRACE.SEIZE, tid, 0, PTRACE_O.TRACESYSGOOD);
  } catch (e) {
    if (e instanceof SyscallError && e.code === "EPERM") {
      throw new FerryError("FERRY_SEIZE", `cannot trace PID ${tid}: it is already traced (by a debugger?) or ferry lacks CAP_SYS_PTRACE`);
    }
    throw e;
  }
  ptrace(PTRACE.INTERRUPT, tid);
  for (;;) {
    const st = waitStop(tid);
    if (st.event === PTRACE_EVENT_STOP) return;
    // A signal-delivery stop: hand the signal back to the task; the interrupt is still pending.
    ptrace(PTRACE.CONT, tid, 0, st.stopSig);
  }
}

export function detachTask(tid: number, signal = 0): void {
  ptrace(PTRACE.DETACH, tid, 0, signal);
}
