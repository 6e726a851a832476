import fs from "node:fs";
import { FerryError } from "../errors.js";
import { PTRACE, PTRACE_O, PTRACE_EVENT_STOP, ptrace, waitStop } from "../kernel/ptrace.js";
import { processExists, readStat, statField } from "../kernel/procfs.js";
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
 * Freeze many tasks at once: PTRACE_SEIZE and PTRACE_INTERRUPT all of them first, then wait for
 * each stop, so the stops overlap instead of adding up (a busy thread stops at its next turn on
 * a CPU). A task that ended meanwhile is skipped. Returns the tasks frozen.
 */
export function seizeTasks(tids: number[]): number[] {
  const seized: number[] = [];
  try {
    for (const tid of tids) {
      try {
        ptrace(PTRACE.SEIZE, tid, 0, PTRACE_O.TRACESYSGOOD);
      } catch (e) {
        if (e instanceof SyscallError && e.code === "ESRCH") continue; // gone
        if (e instanceof SyscallError && e.code === "EPERM") {
          throw new FerryError("FERRY_SEIZE", `cannot trace PID ${tid}: it is already traced (by a debugger?) or ferry lacks CAP_SYS_PTRACE`);
        }
        throw e;
      }
      seized.push(tid);
    }
    for (const tid of seized) ptrace(PTRACE.INTERRUPT, tid);
    for (const tid of seized) waitInterruptStop(tid);
    return seized;
  } catch (e) {
    for (const tid of seized) {
      try {
        detachTask(tid);
      } catch { /* gone */ }
    }
    throw e;
  }
}

function waitInterruptStop(tid: number): void {
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
