import fs from "node:fs";
import { FerryError } from "../errors.js";
import { NR, NSIG, RLIMIT_COUNT, SIG, sys, rawSyscall } from "../kernel/sys.js";
import { getRegs, getRegset, getSigmask, getRseqConfig, peekSiginfo, NT_X86_XSTATE, type Regs } from "../kernel/ptrace.js";
import { applySyscallRestart } from "../kernel/restart.js";
import { readStat, readStatus, statField } from "../kernel/procfs.js";
import type { Injector, SyscallBatch } from "../kernel/inject.js";
import { u64le, sigActionImage, type CoreImage, type ItimerImage, type PosixTimerImage, type RlimitImage, type SigActionImage, type ThreadImage } from "../images/types.js";

const PR_GET_PDEATHSIG = 2;
const PR_GET_DUMPABLE = 3;
const PR_GET_TIMERSLACK = 30;
const PR_GET_CHILD_SUBREAPER = 37;
const PR_GET_NO_NEW_PRIVS = 39;
const PR_GET_TID_ADDRESS = 40;

/** Registers as the task will need them to carry on: syscall restart already applied. */
export function threadRegs(tid: number): { regs: Regs; restarted: boolean } {
  const regs = getRegs(tid);
  const restarted = applySyscallRestart(regs);
  return { regs, restarted };
}

/** State of one thread that ptrace reads from outside, plus what only the thread can tell. */
export function dumpThread(tid: number, inj: Injector, regs: Regs, restarted: boolean): ThreadImage {
  const rseq = getRseqConfig(tid);
  const robust = Buffer.alloc(16);
  sys("get_robust_list", NR.get_robust_list, tid, robust, Buffer.from(robust.buffer, robust.byteOffset + 8, 8));
  // Out-parameters of injected calls land in the task's batch area.
  const b = inj.batch();
  const tidAt = b.space(8);
  const ssAt = b.space(24);
  b.add("prctl(PR_GET_TID_ADDRESS)", NR.prctl, PR_GET_TID_ADDRESS, tidAt);
  b.add("sigaltstack", NR.sigaltstack, 0, ssAt);
  b.run();
  const tidAddress = b.read(tidAt, 8).readBigUInt64LE(0);
  const ss = b.read(ssAt, 24);
  return {
    tid,
    regs: regs.raw,
    xstate: getRegset(tid, NT_X86_XSTATE, 16384),
    sigmask: u64le(getSigmask(tid)),
    pending: peekSiginfo(tid, false),
    rseqAddress: Number(rseq.address),
    rseqLength: rseq.length,
    rseqSignature: rseq.signature,
    robustList: Number(robust.readBigUInt64LE(0)),
    robustListLen: Number(robust.readBigUInt64LE(8)),
    clearTidAddress: Number(tidAddress),
    altstackSp: Number(ss.readBigUInt64LE(0)),
    altstackFlags: ss.readInt32LE(8),
    altstackSize: Number(ss.readBigUInt64LE(16)),
    comm: fs.readFileSync(`/proc/${inj.pid}/task/${tid}/comm`, "utf8").trim(),
    restartedSyscall: restarted,
  };
}

/** Every signal's action, asked in `b`: read them once it ran. */
function sigactions(b: SyscallBatch): () => SigActionImage[] {
  const asked: { sig: number; at: number }[] = [];
  for (let sig = 1; sig <= NSIG; sig++) {
    if (sig === SIG.KILL || sig === SIG.STOP) continue;
    const at = b.space(32);
    b.add(`rt_sigaction(${sig})`, NR.rt_sigaction, sig, 0, at, 8);
    asked.push({ sig, at });
  }
  return () => asked.map(({ sig, at }) => sigActionImage(sig, b.read(at, 32)));
}

/** The three interval timers, asked in `b`. */
function itimers(b: SyscallBatch): () => ItimerImage[] {
  const asked = [0, 1, 2].map((which) => {
    const at = b.space(32);
    b.add(`getitimer(${which})`, NR.getitimer, which, at);
    return { which, at };
  });
  return () => asked.map(({ which, at }) => {
    const t = b.read(at, 32);
    const us = (o: number) => Number(t.readBigInt64LE(o)) * 1e6 + Number(t.readBigInt64LE(o + 8));
    return { which, intervalUs: us(0), valueUs: us(16) };
  });
}

/** /proc/PID/timers lists each POSIX timer; its time left is asked inside the task. */
function posixTimers(inj: Injector): PosixTimerImage[] {
  let text = "";
  try {
    text = fs.readFileSync(`/proc/${inj.pid}/timers`, "utf8");
  } catch {
    return [];
  }
  const out: PosixTimerImage[] = [];
  for (const block of text.split(/(?=^ID:)/m)) {
    const id = /^ID:\s*(\d+)/m.exec(block);
    if (!id) continue;
    const sig = /^signal:\s*(\d+)\/([0-9a-f]+)/m.exec(block);
    const notify = /^notify:\s*(\w+)\/(\w+)\.(\d+)/m.exec(block);
    const clock = /^ClockID:\s*(\d+)/m.exec(block);
    const kinds: Record<string, number> = { signal: 0, none: 1, thread: 2 };
    const tid = notify && notify[2] === "tid" ? Number(notify[3]) : 0;
    const timerId = Number(id[1]);
    inj.ok(`timer_gettime(${timerId})`, NR.timer_gettime, timerId, inj.scratch);
    const t = inj.get(0, 32);
    const ns = (o: number) => Number(t.readBigInt64LE(o)) * 1e9 + Number(t.readBigInt64LE(o + 8));
    const overrun = Number(inj.call(NR.timer_getoverrun, timerId));
    out.push({
      id: timerId,
      clockId: clock ? Number(clock[1]) : 0,
      notify: (notify ? kinds[notify[1]] ?? 0 : 0) | (tid ? 4 : 0),
      signo: sig ? Number(sig[1]) : 0,
      sigevValue: sig ? parseInt(sig[2], 16) : 0,
      notifyTid: tid,
      intervalNs: ns(0),
      valueNs: ns(16),
      overrun: overrun > 0 ? overrun : 0,
    });
  }
  return out;
}

/**
 * The 16 resource limits, from /proc/PID/limits (rows in RLIMIT_* order, exact decimal values):
 * no call inside the process (prlimit from outside needs CAP_SYS_RESOURCE for another uid).
 */
function rlimits(pid: number): RlimitImage[] {
  const rows = fs.readFileSync(`/proc/${pid}/limits`, "utf8").split("\n").slice(1).filter(Boolean);
  if (rows.length < RLIMIT_COUNT) throw new FerryError("FERRY_DUMP", `/proc/${pid}/limits lists ${rows.length} limits, expected ${RLIMIT_COUNT}`);
  const value = (text: string) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(text === "unlimited" ? 0xffffffffffffffffn : BigInt(text));
    return b;
  };
  return rows.slice(0, RLIMIT_COUNT).map((row, resource) => {
    const [cur, max] = row.slice(26).trim().split(/\s+/); // the name is padded to 25 characters
    return { resource, cur: value(cur), max: value(max) };
  });
}

function ids(line: string | undefined): number[] {
  return (line ?? "").split(/\s+/).filter(Boolean).map(Number);
}

export function dumpCore(pid: number, inj: Injector, threads: ThreadImage[]): CoreImage {
  const status = readStatus(pid);
  const stat = readStat(pid);
  // Everything asked inside the process that does not depend on an earlier answer: one batch.
  const b = inj.batch();
  const actions = sigactions(b);
  const timers = itimers(b);
  const prctls = new Map([PR_GET_TIMERSLACK, PR_GET_PDEATHSIG, PR_GET_NO_NEW_PRIVS, PR_GET_DUMPABLE, PR_GET_CHILD_SUBREAPER].map((opt) => {
    const at = b.space(4);
    return [opt, { at, i: b.try(NR.prctl, opt, at, 0, 0, 0) }];
  }));
  b.run();
  /** a prctl's answer (0 if refused): its int out-parameter for the two that have one, else its result */
  const prctl = (opt: number) => {
    const { at, i } = prctls.get(opt)!;
    const r = b.result(i);
    if (r < 0n) return 0;
    return opt === PR_GET_PDEATHSIG || opt === PR_GET_CHILD_SUBREAPER ? b.read(at, 4).readInt32LE(0) : Number(r);
  };
  const sid = Number(statField(stat, 6));
  return {
    pid,
    ppid: Number(statField(stat, 4)),
    pgid: Number(statField(stat, 5)),
    sid,
    comm: stat.comm,
    threads,
    sigactions: actions(),
    pendingShared: peekSiginfo(pid, true),
    itimers: timers(),
    posixTimers: posixTimers(inj),
    rlimits: rlimits(pid),
    creds: { uid: ids(status.Uid), gid: ids(status.Gid), groups: ids(status.Groups) },
    cwd: fs.readlinkSync(`/proc/${pid}/cwd`),
    root: fs.readlinkSync(`/proc/${pid}/root`),
    umask: parseInt(status.Umask ?? "22", 8),
    personality: parseInt(fs.readFileSync(`/proc/${pid}/personality`, "utf8").trim(), 16),
    sessionLeader: sid === pid,
    timerSlackNs: prctl(PR_GET_TIMERSLACK),
    pdeathSignal: prctl(PR_GET_PDEATHSIG),
    noNewPrivs: prctl(PR_GET_NO_NEW_PRIVS) === 1,
    dumpable: prctl(PR_GET_DUMPABLE),
    childSubreaper: prctl(PR_GET_CHILD_SUBREAPER) === 1,
  };
}

export { rawSyscall };
