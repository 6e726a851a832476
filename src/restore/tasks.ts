import { FerryError } from "../errors.js";
import { NR, SIG, sleepSync, sys } from "../kernel/sys.js";
import { PTRACE, getRegs, ptrace, setRegs, setSigmask, waitStop, waitTask, WNOHANG } from "../kernel/ptrace.js";
import type { Injector } from "../kernel/inject.js";

/** A task ferry created: killed and reaped if the restore fails. */
export interface Task { pid: number; tid: number }

const CLONE_THREAD_FLAGS = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000; // VM FS FILES SIGHAND THREAD SYSVSEM

/**
 * clone3 with set_tid, run inside a restored task: a thread (CLONE_THREAD family) or a child
 * process (fork semantics). PTRACE_O_TRACECLONE/TRACEFORK attach the new task, which stops
 * before running a single instruction of its own.
 */
function cloneInside(inj: Injector, tid: number, flags: number, exitSignal: number, what: string): Injector {
  const args = Buffer.alloc(88);
  const tidBuf = Buffer.alloc(4);
  tidBuf.writeInt32LE(tid);
  const tidAddr = inj.put(512, tidBuf);
  args.writeBigUInt64LE(BigInt(flags), 0);
  args.writeBigUInt64LE(BigInt(exitSignal), 32);
  args.writeBigUInt64LE(BigInt(tidAddr), 64); // set_tid
  args.writeBigUInt64LE(1n, 72); // set_tid_size
  const r = inj.call(NR.clone3, inj.put(0, args), args.length);
  if (r === -17n) throw new FerryError("FERRY_PID_TAKEN", `PID ${tid} is already taken by another process: cannot recreate ${what}`);
  if (r < 0n) throw new FerryError("FERRY_CLONE", `clone3 of ${what} ${tid} inside ${inj.pid} failed (errno ${-r})`);
  if (Number(r) !== tid) throw new FerryError("FERRY_CLONE", `${what} ${tid} came back as ${r}`);
  waitStop(tid);
  return inj.forThread(tid);
}

export function cloneThread(inj: Injector, tid: number): Injector {
  return cloneInside(inj, tid, CLONE_THREAD_FLAGS, 0, "thread");
}

export function cloneProcess(inj: Injector, pid: number): Injector {
  return cloneInside(inj, pid, 0, SIG.CHLD, "process");
}

/**
 * A child that had ended but was not reaped: created inside its parent, then made to end the same
 * way (exit code, or death by the same signal, without a core file), so the parent finds it.
 */
export function makeZombie(parent: Injector, pid: number, status: number): void {
  const z = cloneProcess(parent, pid);
  z.ok("prlimit64(RLIMIT_CORE)", NR.prlimit64, 0, 4, z.put(0, Buffer.alloc(16)), 0);
  const sig = status & 0x7f;
  const regs = getRegs(pid);
  regs.set("rip", z.site);
  if (sig) {
    // Raised by itself (a signal handed to PTRACE_CONT from a syscall stop is dropped).
    z.ok(`rt_sigaction(${sig}, SIG_DFL)`, NR.rt_sigaction, sig, z.put(0, Buffer.alloc(32)), 0, 8);
    setSigmask(pid, 0n);
    regs.set("rax", NR.kill);
    regs.set("rdi", pid);
    regs.set("rsi", sig);
  } else {
    regs.set("rax", NR.exit_group);
    regs.set("rdi", (status >> 8) & 0xff);
  }
  setRegs(pid, regs);
  ptrace(PTRACE.CONT, pid, 0, 0);
  for (let i = 0; i < 8; i++) {
    const st = waitTask(pid); // its end, as its tracer sees it; its parent will reap it
    if (st && !st.stopped) return;
    // the signal's delivery stop: let it through
    ptrace(PTRACE.CONT, pid, 0, st && (st.stopSig & 0x7f) === sig ? sig : 0);
  }
  throw new FerryError("FERRY_RESTORE", `zombie ${pid} did not end as it should`);
}

/**
 * Kill every task created so far, children before parents, threads before their leader. ferry is
 * the tracer of them all and the parent of the root; as a child subreaper (see restore()) it also
 * inherits the zombies of killed parents, and reaps them: no PID of the tree stays taken.
 */
export function killAll(tasks: Task[]): void {
  const pids = [...new Set([...tasks].reverse().map((t) => t.pid))];
  for (const pid of pids) {
    try {
      sys("kill", NR.kill, pid, SIG.KILL);
    } catch { /* gone */ }
  }
  for (const t of [...tasks].reverse()) {
    try {
      waitTask(t.tid);
    } catch { /* reaped */ }
  }
  for (const pid of pids) {
    for (let i = 0; i < 200; i++) {
      try {
        if (waitTask(pid, WNOHANG)) break;
      } catch {
        break; // not ours to reap (ECHILD): gone, or reaped above
      }
      sleepSync(5);
    }
  }
}

/** Orphans of a failed restore come to ferry instead of init, which would reap them late. */
export function becomeSubreaper(): void {
  sys("prctl(PR_SET_CHILD_SUBREAPER)", NR.prctl, 36, 1, 0, 0, 0);
}
