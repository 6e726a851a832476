import { FerryError } from "../errors.js";
import { NR, NSIG, RLIMIT_COUNT, SIG, cstring, rawSyscall } from "../kernel/sys.js";
import type { Injector, SyscallBatch } from "../kernel/inject.js";
import { readU64le, sigActionImage, type CoreImage, type RlimitImage, type SigActionImage, type ThreadImage } from "../images/types.js";

const PR_SET_PDEATHSIG = 1, PR_SET_DUMPABLE = 4, PR_SET_NAME = 15, PR_SET_TIMERSLACK = 29;
const PR_SET_CHILD_SUBREAPER = 36, PR_SET_NO_NEW_PRIVS = 38, PR_TIMER_CREATE_RESTORE_IDS = 77;

/**
 * What a new task starts with: the signal actions and resource limits of the task that cloned it
 * (ferry for the root, its restored parent for a child). Only what differs is set inside it: each
 * injected call is a ptrace round trip, and most of 64 actions and 16 limits are the defaults.
 */
export interface Inherited {
  sigactions: SigActionImage[];
  rlimits: RlimitImage[];
}

/** Ferry's own actions and limits, asked of the kernel directly (no injection): what a stub cloned now inherits. */
export function ownInherited(): Inherited {
  const sigactions: SigActionImage[] = [];
  const k = Buffer.alloc(32);
  for (let sig = 1; sig <= NSIG; sig++) {
    if (sig === SIG.KILL || sig === SIG.STOP) continue;
    if (rawSyscall(NR.rt_sigaction, sig, 0, k, 8) < 0n) continue; // unknown: set it
    sigactions.push(sigActionImage(sig, k));
  }
  const rlimits: RlimitImage[] = [];
  for (let r = 0; r < RLIMIT_COUNT; r++) {
    const b = Buffer.alloc(16);
    if (rawSyscall(NR.prlimit64, 0, r, 0, b) < 0n) continue;
    rlimits.push({ resource: r, cur: b.subarray(0, 8), max: b.subarray(8, 16) });
  }
  return { sigactions, rlimits };
}

const sameAction = (a: SigActionImage, b: SigActionImage | undefined) =>
  !!b && a.handler === b.handler && a.flags === b.flags && a.restorer === b.restorer && Buffer.compare(a.mask, b.mask) === 0;

export function restoreSigactions(b: SyscallBatch, core: CoreImage, inherited: Inherited): void {
  for (const a of core.sigactions) {
    if (a.signo === SIG.KILL || a.signo === SIG.STOP) continue;
    if (sameAction(a, inherited.sigactions.find((x) => x.signo === a.signo))) continue;
    const k = Buffer.alloc(32);
    k.writeBigUInt64LE(BigInt(a.handler), 0);
    k.writeBigUInt64LE(BigInt(a.flags), 8);
    k.writeBigUInt64LE(BigInt(a.restorer), 16);
    k.writeBigUInt64LE(readU64le(a.mask), 24);
    b.add(`rt_sigaction(${a.signo})`, NR.rt_sigaction, a.signo, b.put(k), 0, 8);
  }
}

function timeval(us: number, b: Buffer, off: number) {
  b.writeBigInt64LE(BigInt(Math.floor(us / 1e6)), off);
  b.writeBigInt64LE(BigInt(us % 1e6), off + 8);
}
function timespec(ns: number, b: Buffer, off: number) {
  b.writeBigInt64LE(BigInt(Math.floor(ns / 1e9)), off);
  b.writeBigInt64LE(BigInt(ns % 1e9), off + 8);
}

/** The interval timers, in `b`. */
export function restoreItimers(b: SyscallBatch, core: CoreImage): void {
  for (const t of core.itimers) {
    if (!t.intervalUs && !t.valueUs) continue;
    const v = Buffer.alloc(32);
    timeval(t.intervalUs, v, 0);
    // Dumped just after it fired (its signal still pending): value 0 would disarm it for good.
    timeval(t.valueUs || t.intervalUs, v, 16);
    b.add(`setitimer(${t.which})`, NR.setitimer, t.which, b.put(v), 0);
  }
}

/** POSIX timers, each with its dumped ID (each creation is checked before the next). */
export function restorePosixTimers(inj: Injector, core: CoreImage): void {
  if (!core.posixTimers.length) return;
  // Timer IDs are part of the program's state: ask the kernel to hand out the dumped ones.
  inj.ok("prctl(PR_TIMER_CREATE_RESTORE_IDS)", NR.prctl, PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0);
  for (const t of [...core.posixTimers].sort((a, b) => a.id - b.id)) {
    const sev = Buffer.alloc(64);
    sev.writeBigUInt64LE(BigInt(t.sigevValue), 0);
    sev.writeInt32LE(t.signo, 8);
    sev.writeInt32LE(t.notify, 12);
    sev.writeInt32LE(t.notifyTid, 16);
    const idBuf = Buffer.alloc(4);
    idBuf.writeInt32LE(t.id);
    const sevAddr = inj.put(0, sev);
    const idAddr = inj.put(64, idBuf);
    inj.ok(`timer_create(${t.id})`, NR.timer_create, t.clockId, sevAddr, idAddr);
    const got = inj.get(64, 4).readInt32LE(0);
    if (got !== t.id) throw new FerryError("FERRY_RESTORE", `POSIX timer ${t.id} came back as ${got}`);
    if (t.valueNs || t.intervalNs) {
      const its = Buffer.alloc(32);
      timespec(t.intervalNs, its, 0);
      timespec(t.valueNs || t.intervalNs, its, 16); // see the itimers above
      inj.ok(`timer_settime(${t.id})`, NR.timer_settime, t.id, 0, inj.put(128, its), 0);
    }
  }
  inj.ok("prctl(PR_TIMER_CREATE_RESTORE_IDS)", NR.prctl, PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
}

/** The resource limits that differ from the inherited ones, in `b`. */
export function restoreRlimits(b: SyscallBatch, core: CoreImage, inherited: Inherited): void {
  for (const r of core.rlimits) {
    const had = inherited.rlimits.find((x) => x.resource === r.resource);
    if (had && had.cur.equals(r.cur) && had.max.equals(r.max)) continue;
    const refused = (errno: number) =>
      new FerryError("FERRY_RLIMIT", `cannot set resource limit ${r.resource} to ${readU64le(r.cur)}/${readU64le(r.max)} (errno ${errno}): raising a hard limit needs CAP_SYS_RESOURCE`);
    b.add(refused, NR.prlimit64, 0, r.resource, b.put(Buffer.concat([r.cur, r.max])), 0);
  }
}

/** Process-wide attributes: name, umask, personality, cwd and root, session, prctl flags. */
export function restoreProcessAttrs(b: SyscallBatch, core: CoreImage, shellJob: boolean): void {
  b.add("prctl(PR_SET_NAME)", NR.prctl, PR_SET_NAME, b.put(cstring(core.comm.slice(0, 15))), 0, 0, 0);
  b.add("umask", NR.umask, core.umask);
  b.add("personality", NR.personality, core.personality);
  if (core.timerSlackNs) b.try(NR.prctl, PR_SET_TIMERSLACK, core.timerSlackNs, 0, 0, 0);
  b.add("prctl(PR_SET_PDEATHSIG)", NR.prctl, PR_SET_PDEATHSIG, core.pdeathSignal, 0, 0, 0);
  if (core.childSubreaper) b.add("prctl(PR_SET_CHILD_SUBREAPER)", NR.prctl, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  if (!shellJob) {
    if (core.sessionLeader) b.add("setsid", NR.setsid);
    else if (core.pgid === core.pid) b.add("setpgid", NR.setpgid, 0, 0);
  }
  b.add(`chdir(${core.cwd})`, NR.chdir, b.put(cstring(core.cwd)));
  if (core.root !== "/") b.add(`chroot(${core.root})`, NR.chroot, b.put(cstring(core.root)));
}

/** Per-thread kernel state that lives outside the registers. */
export function restoreThreadState(b: SyscallBatch, t: ThreadImage): void {
  if (t.comm) b.add("prctl(PR_SET_NAME)", NR.prctl, PR_SET_NAME, b.put(cstring(t.comm.slice(0, 15))), 0, 0, 0);
  if (t.robustList) b.add("set_robust_list", NR.set_robust_list, t.robustList, t.robustListLen);
  b.add("set_tid_address", NR.set_tid_address, t.clearTidAddress);
  const ss = Buffer.alloc(24);
  ss.writeBigUInt64LE(BigInt(t.altstackSp), 0);
  ss.writeInt32LE(t.altstackFlags & ~1 /* SS_ONSTACK is not settable */, 8);
  ss.writeBigUInt64LE(BigInt(t.altstackSize), 16);
  b.add("sigaltstack", NR.sigaltstack, b.put(ss), 0);
  if (t.rseqAddress) b.add("rseq", NR.rseq, t.rseqAddress, t.rseqLength, 0, t.rseqSignature);
}

/** Queue the signals that were pending at dump time (all signals are blocked meanwhile). */
export function restorePending(b: SyscallBatch, core: CoreImage): void {
  for (const info of core.pendingShared) {
    b.add("rt_sigqueueinfo", NR.rt_sigqueueinfo, core.pid, info.readInt32LE(0), b.put(info));
  }
  for (const t of core.threads) {
    for (const info of t.pending) {
      b.add("rt_tgsigqueueinfo", NR.rt_tgsigqueueinfo, core.pid, t.tid, info.readInt32LE(0), b.put(info));
    }
  }
}

/** Credentials go last (in `b`, after the thread's other calls): once the task is no longer root, little else could be set. */
export function restoreCreds(b: SyscallBatch, core: CoreImage): void {
  const { uid, gid, groups } = core.creds;
  if (core.noNewPrivs) b.add("prctl(PR_SET_NO_NEW_PRIVS)", NR.prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  const g = Buffer.alloc(4 * Math.max(1, groups.length));
  groups.forEach((x, i) => g.writeUInt32LE(x, i * 4));
  b.add("setgroups", NR.setgroups, groups.length, b.put(g));
  if (gid.length >= 3) b.add("setresgid", NR.setresgid, gid[0], gid[1], gid[2]);
  if (uid.length >= 3) b.add("setresuid", NR.setresuid, uid[0], uid[1], uid[2]);
  b.try(NR.prctl, PR_SET_DUMPABLE, core.dumpable, 0, 0, 0); // changing ids reset it
}
