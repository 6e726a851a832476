import { setTimeout as sleep } from "node:timers/promises";
import { FerryError } from "../errors.js";
import { NR, SIG, sys, rawSyscall } from "../kernel/sys.js";
import { PTRACE, ptrace, waitTask } from "../kernel/ptrace.js";
import { processState, readStatus } from "../kernel/procfs.js";

/**
 * The source process of a lazy migration while its pages are served: stopped twice over.
 * It is in a group stop (SIGSTOP, so it stays stopped even if ferry dies: a tracer's exit lets a
 * tracee run again, a group stop does not) and held by ptrace (so a stray SIGCONT cannot wake it
 * while ferry serves its memory). Only two ways out: kill() once the destination holds every
 * page, or release() leaving it stopped for `ferry resume`.
 */
export class FrozenProcess {
  private held = false;

  private constructor(readonly pid: number) {}

  /** Take hold of a process that dump() left stopped (SIGSTOP). */
  static async hold(pid: number): Promise<FrozenProcess> {
    const p = new FrozenProcess(pid);
    const until = Date.now() + 2000;
    while (processState(pid) !== "T") {
      if (Date.now() > until) throw new FerryError("FERRY_NOT_FROZEN", `process ${pid} did not stop (state ${processState(pid) ?? "gone"})`);
      await sleep(1);
    }
    ptrace(PTRACE.SEIZE, pid, 0, 0);
    p.held = true;
    // Seizing a stopped task makes it re-trap; that stop is reported to us: consume it.
    for (let i = 0; i < 200 && !waitTask(pid, 1 /* WNOHANG */); i++) await sleep(1);
    return p;
  }

  /** The destination holds everything: the source copy goes. */
  kill(): void {
    sys(`kill(${this.pid})`, NR.kill, this.pid, SIG.KILL);
    if (this.held) {
      try {
        waitTask(this.pid); // its death, as its tracer sees it
      } catch { /* reaped */ }
      this.held = false;
    }
  }

  /** Let go of the ptrace hold; the group stop keeps it frozen until `ferry resume`. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    const r = rawSyscall(NR.ptrace, PTRACE.DETACH, this.pid, 0, 0);
    if (r < 0n && r !== -3n /* ESRCH: gone */) {
      // not in a ptrace stop right now: interrupt it first, then detach
      rawSyscall(NR.ptrace, PTRACE.INTERRUPT, this.pid, 0, 0);
      try {
        waitTask(this.pid);
      } catch { /* gone */ }
      rawSyscall(NR.ptrace, PTRACE.DETACH, this.pid, 0, 0);
    }
  }
}

/**
 * `ferry resume PID`: let a source that a lazy migration left frozen run again where it is.
 * Only when nothing holds it any more (its page server has ended).
 */
export function resumeFrozen(pid: number): void {
  const state = processState(pid);
  if (state === null) throw new FerryError("FERRY_NO_PROCESS", `no process with PID ${pid}`);
  const status = readStatus(pid);
  const tracer = Number(status.TracerPid ?? 0);
  if (tracer) {
    throw new FerryError("FERRY_STILL_SERVED", `process ${pid} is still held by ferry's page server (PID ${tracer}): stop that first (Ctrl-C or SIGTERM leaves ${pid} frozen for resume)`);
  }
  if (state !== "T") throw new FerryError("FERRY_NOT_FROZEN", `process ${pid} is not stopped (state ${state}): nothing to resume`);
  sys(`kill(${pid}, SIGCONT)`, NR.kill, pid, SIG.CONT);
}
