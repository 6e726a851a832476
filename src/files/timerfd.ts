import fs from "node:fs";
import { NR, O, sys, rawSyscall, errnoName } from "../kernel/sys.js";
import { readFdinfo } from "../kernel/procfs.js";
import { FerryError } from "../errors.js";
import { u64le } from "../images/types.js";
import type { FileKind } from "./kind.js";
import { setStatusFlags } from "./util.js";

const TFD_TIMER_ABSTIME = 1;
const CLOCK_REALTIME = 0, CLOCK_REALTIME_ALARM = 8;
/** _IOW('T', 0, u64): set the expirations not yet read (needs CONFIG_CHECKPOINT_RESTORE). */
const TFD_IOC_SET_TICKS = 0x40085400;
const NS = 1_000_000_000n;

function clockNow(clock: number): bigint {
  const ts = Buffer.alloc(16);
  sys(`clock_gettime(${clock})`, NR.clock_gettime, clock, ts);
  return ts.readBigInt64LE(0) * NS + ts.readBigInt64LE(8);
}

/** Wall-clock deadlines mean the same on any host; other clocks start anew with each boot. */
const isWallClock = (clock: number) => clock === CLOCK_REALTIME || clock === CLOCK_REALTIME_ALARM;

function timespecNs(b: Buffer, off: number): bigint {
  return b.readBigInt64LE(off) * NS + b.readBigInt64LE(off + 8);
}
function putTimespec(b: Buffer, off: number, ns: bigint): void {
  b.writeBigInt64LE(ns / NS, off);
  b.writeBigInt64LE(ns % NS, off + 8);
}

/**
 * timerfd: clock, settime flags and unread expirations (ticks) from fdinfo; the time left and the
 * interval from timerfd_gettime on ferry's copy. That call goes first because on a periodic timer
 * that has fired it moves the timer to its next expiry and adds the missed periods to ticks (fdinfo
 * alone would show 0 time left, which would disarm the timer on restore).
 *
 * `valueNs` is the time left at the dump, except for an absolute (TFD_TIMER_ABSTIME) timer on a
 * wall clock (REALTIME, REALTIME_ALARM), where it is the absolute deadline in ns since the epoch:
 * such a timer fires at the same wall-clock time after restore, and counts the periods it missed
 * meanwhile. A relative timer, or an absolute one on a clock that restarts at boot (MONOTONIC,
 * BOOTTIME), gets its time left again: the time between dump and restore does not count for it.
 * The flags stay as they were (an absolute monotonic timer is set absolute to now + time left).
 * Ticks not yet read come back with TFD_IOC_SET_TICKS, after timerfd_settime (which zeroes them).
 * Not restored: a TFD_TIMER_CANCEL_ON_SET timer that was already cancelled reads ECANCELED once;
 * the restored one does not.
 */
export const timerfd: FileKind = {
  kind: "timerfd",
  matches: (c) => c.link === "anon_inode:[timerfd]",
  dump(c) {
    const cur = Buffer.alloc(32);
    sys(`timerfd_gettime(${c.where})`, NR.timerfd_gettime, c.localFd, cur);
    const info = readFdinfo(process.pid, c.localFd); // after gettime: its ticks include missed periods
    const clockId = Number(info.clockid);
    const settimeFlags = parseInt(info["settime flags"] ?? "0", 8);
    if (!Number.isInteger(clockId) || info.ticks === undefined) {
      throw new FerryError("FERRY_DUMP_FILE", `${c.where}: unexpected fdinfo for a timerfd: ${info.__raw}`);
    }
    let value = timespecNs(cur, 16);
    if (value > 0n && settimeFlags & TFD_TIMER_ABSTIME && isWallClock(clockId)) value += clockNow(clockId);
    return {
      clockId, settimeFlags, ticks: Number(info.ticks),
      intervalNs: Number(timespecNs(cur, 0)), valueNs: Number(value),
    };
  },
  open(obj) {
    const fd = sys(`timerfd_create(clock ${obj.clockId})`, NR.timerfd_create, obj.clockId, O.CLOEXEC);
    try {
      setStatusFlags(fd, obj.flags);
      let value = BigInt(obj.valueNs);
      if (value > 0n && obj.settimeFlags & TFD_TIMER_ABSTIME && !isWallClock(obj.clockId)) value += clockNow(obj.clockId);
      if (value > 0n || obj.intervalNs || obj.settimeFlags) { // a disarmed timer keeps its interval too
        const spec = Buffer.alloc(32);
        putTimespec(spec, 0, BigInt(obj.intervalNs));
        putTimespec(spec, 16, value);
        sys("timerfd_settime", NR.timerfd_settime, fd, obj.settimeFlags, spec, null);
      }
      if (obj.ticks > 0) {
        const r = rawSyscall(NR.ioctl, fd, TFD_IOC_SET_TICKS, u64le(BigInt(obj.ticks)));
        if (r < 0n) {
          throw new FerryError("FERRY_UNSUPPORTED", `timerfd ${obj.id} had ${obj.ticks} expirations not yet read, and this kernel cannot set them (TFD_IOC_SET_TICKS: ${errnoName(Number(-r))}; it needs CONFIG_CHECKPOINT_RESTORE)`);
        }
      }
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return fd;
  },
};
