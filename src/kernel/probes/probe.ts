import { native } from "../native.js";
import { NR, SIG, rawSyscall, SyscallError } from "../sys.js";
import { PTRACE, PTRACE_O, ptrace, waitStop, waitTask } from "../ptrace.js";

/** What a probe found: `ok`, and a one-line account of what it did and saw. */
export interface ProbeResult {
  ok: boolean;
  detail: string;
  value?: string;
}

/** A feature check: `run` really uses the feature; `enables`/`without` say what it means. */
export interface Probe {
  name: string;
  required: boolean;
  enables: string;
  without: string;
  run(): ProbeResult | Promise<ProbeResult>;
}

/** Shorthands for probe results. */
export const ok = (detail: string, value?: string): ProbeResult => (value === undefined ? { ok: true, detail } : { ok: true, detail, value });
export const missing = (detail: string): ProbeResult => ({ ok: false, detail });

/**
 * Run `fn` on a throw-away child: a spawnStub copy of this process (one thread, raw syscalls
 * only) that is traced by us and stopped. Whatever `fn` does, the child is killed and reaped
 * afterwards; EXITKILL also kills it should ferry itself die meanwhile.
 * The child shares nothing with us but is a copy: every Buffer we had at spawn time is at the
 * same address in it, with the content it had then.
 */
export function withStub<T>(fn: (pid: number) => T, setTid: number[] | null = null): T {
  const pid = native.spawnStub(setTid, 0);
  if (pid < 0) throw new SyscallError(setTid ? `clone3(set_tid=${setTid.join(",")})` : "clone3", -pid);
  try {
    waitStop(pid);
    ptrace(PTRACE.SETOPTIONS, pid, 0, PTRACE_O.TRACESYSGOOD | PTRACE_O.EXITKILL);
    return fn(pid);
  } finally {
    killAndReap(pid);
  }
}

/** SIGKILL a child of ours and wait until it is gone (a traced child may report stops first). */
export function killAndReap(pid: number): void {
  rawSyscall(NR.kill, pid, SIG.KILL);
  for (;;) {
    let st;
    try {
      st = waitTask(pid);
    } catch {
      return; // ECHILD: already reaped
    }
    if (!st || st.exited || st.signaled) return;
  }
}


/** An error as one line: "what: ENAME" for a SyscallError, the message otherwise. */
export function errText(e: unknown): string {
  if (e instanceof SyscallError) return e.message;
  return (e as Error)?.message ?? String(e);
}
