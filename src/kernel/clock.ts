import { NR, rawSyscall } from "./sys.js";

const CLOCK_REALTIME = 0;
const ts = Buffer.alloc(16);

/**
 * Wall-clock time in µs, from the kernel (CLOCK_REALTIME). Downtime is the difference of two such
 * times taken by two processes (the freeze by ferry migrate, the resume by the agent): Node's
 * performance.timeOrigin is set once at start-up from a millisecond clock read next to a
 * monotonic one, and two processes' origins disagree by up to several ms on a busy machine.
 */
export function realtimeUs(): number {
  if (rawSyscall(NR.clock_gettime, CLOCK_REALTIME, ts) < 0n) return (performance.timeOrigin + performance.now()) * 1000;
  return Number(ts.readBigInt64LE(0)) * 1e6 + Math.floor(Number(ts.readBigInt64LE(8)) / 1000);
}

/** The wall-clock time (µs) of `t`, a performance.now() value of this process. */
export function epochUsOf(t: number): number {
  return Math.round(realtimeUs() - (performance.now() - t) * 1000);
}
