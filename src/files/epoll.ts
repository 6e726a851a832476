import { F, NR, O, sys, rawSyscall } from "../kernel/sys.js";
import { listFds } from "../kernel/procfs.js";
import type { Injector } from "../kernel/inject.js";
import { FerryError } from "../errors.js";
import type { EpollTargetImage } from "../images/types.js";
import type { DumpFdContext, FileKind } from "./kind.js";
import { withStatusFlags } from "./util.js";

const KCMP_EPOLL_TFD = 7;
const EPOLL_CTL_ADD = 1, EPOLL_CTL_MOD = 3;
/** EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE: what a fired one-shot watch keeps */
const EP_PRIVATE_BITS = 0xf0000000;
/** every event a file can report (IN PRI OUT ERR HUP RDNORM RDBAND WRNORM WRBAND MSG RDHUP) */
const ALL_EVENTS = 0x27df;
/** tfd: N events: X data: Y  pos:P ino:I sdev:D (events, data, ino and sdev in hex) */
const TFD_LINE = /^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*(\d+)\s+ino:\s*([0-9a-f]+)\s+sdev:\s*([0-9a-f]+)/;
/**
 * `data`: u32 the PID whose fds the watches use (the process the epoll was dumped from), then per
 * watch: u64 its data (exact), i32 the fd of that process that holds the watched file.
 */
const HEADER = 4, RECORD = 12;

interface Watch {
  tfd: number;
  events: number;
  data: bigint;
  ino: string;
  sdev: string;
  /** which of the entries with this tfd it is (kcmp needs it) */
  toff: number;
}

function parseWatches(raw: string): Watch[] {
  const seen = new Map<number, number>();
  const out: Watch[] = [];
  for (const line of raw.split("\n")) {
    const m = TFD_LINE.exec(line);
    if (!m) continue;
    const tfd = Number(m[1]);
    const toff = seen.get(tfd) ?? 0;
    seen.set(tfd, toff + 1);
    out.push({ tfd, events: parseInt(m[2], 16), data: BigInt(`0x${m[3]}`), ino: m[5], sdev: m[6], toff });
  }
  return out;
}

/** Is `fd` of the process the very file the epoll `epfd` watches as entry (tfd, toff)? */
function holds(pid: number, fd: number, epfd: number, w: Watch): boolean {
  const slot = Buffer.alloc(12);
  slot.writeUInt32LE(epfd, 0);
  slot.writeUInt32LE(w.tfd, 4);
  slot.writeUInt32LE(w.toff, 8);
  return rawSyscall(NR.kcmp, pid, pid, KCMP_EPOLL_TFD, fd, slot) === 0n;
}

/**
 * The fd through which the process still holds a watched file: normally its own number. A file
 * registered as fd N stays registered as long as the file lives, even after close(N) when a dup
 * of it remains: then N is free or is another file, and the watch is re-created through the dup.
 */
function holderFd(c: DumpFdContext, w: Watch): number {
  if (holds(c.pid, w.tfd, c.fd, w)) return w.tfd;
  const other = listFds(c.pid).find((fd) => fd !== w.tfd && holds(c.pid, fd, c.fd, w));
  if (other !== undefined) return other;
  throw new FerryError("FERRY_UNSUPPORTED", `pid ${c.pid} epoll fd ${c.fd} watches a file registered as fd ${w.tfd} (inode 0x${w.ino}, device 0x${w.sdev}) that the process no longer has open: it was closed while something else (another process, a message in flight) keeps the file alive, and ferry cannot re-create the watch without an fd of it`);
}

/**
 * epoll: the instance comes back empty from epoll_create1 inside ferry, and finish() registers every
 * watch inside the target with its target fd number, events (EPOLLET, EPOLLONESHOT, EPOLLEXCLUSIVE
 * and EPOLLWAKEUP included; a one-shot watch that has fired comes back disarmed, see disarm()) and data.
 * `targets` holds the watches; `data` holds them again as the restore needs them: the exact 64-bit
 * data words (the image reader decodes 64-bit fields as JS numbers) and the fd holding each file.
 * Not restored: which events were already queued: level-triggered watches report again what is
 * ready, an edge-triggered watch whose file is ready reports it once more after restore.
 */
export const epoll: FileKind = {
  kind: "epoll",
  boundToOwner: true,
  matches: (c) => c.link === "anon_inode:[eventpoll]",
  dump(c) {
    const watches = parseWatches(c.fdinfo.__raw ?? "");
    const records = Buffer.alloc(HEADER + watches.length * RECORD);
    records.writeUInt32LE(c.pid, 0);
    const targets: EpollTargetImage[] = watches.map((w, i) => {
      records.writeBigUInt64LE(w.data, HEADER + i * RECORD);
      records.writeInt32LE(holderFd(c, w), HEADER + i * RECORD + 8);
      return { fd: w.tfd, events: w.events, data: Number(w.data) };
    });
    return { targets, data: records };
  },
  open(obj) {
    if (obj.data.length !== HEADER + obj.targets.length * RECORD) {
      throw new FerryError("FERRY_IMAGE_CORRUPT", `files.img: epoll ${obj.id} has ${obj.targets.length} watches but ${obj.data.length} bytes of watch data`);
    }
    const fd = sys("epoll_create1", NR.epoll_create1, O.CLOEXEC);
    return withStatusFlags(fd, obj.flags);
  },
  finish(obj, inj, targetFds) {
    // Once per epoll, in the process whose fd numbers the watches use (it holds the epoll too).
    if (inj.pid !== obj.data.readUInt32LE(0) || !targetFds.length) return;
    const epfd = targetFds[0];
    const event = (i: number, events: number) => {
      const ev = Buffer.alloc(12); // struct epoll_event is packed on x86_64
      ev.writeUInt32LE(events >>> 0, 0);
      obj.data.copy(ev, 4, HEADER + i * RECORD, HEADER + i * RECORD + 8);
      return ev;
    };
    const holder = (i: number) => obj.data.readInt32LE(HEADER + i * RECORD + 8);
    // Fired one-shot watches first, while nothing else can be ready in this epoll.
    obj.targets.forEach((t, i) => {
      if ((t.events & ~EP_PRIVATE_BITS) === 0) disarm(inj, epfd, t.fd, holder(i), event(i, t.events | ALL_EVENTS), event(i, t.events));
    });
    obj.targets.forEach((t, i) => {
      if ((t.events & ~EP_PRIVATE_BITS) !== 0) watch(inj, epfd, t.fd, holder(i), EPOLL_CTL_ADD, event(i, t.events));
    });
  },
};

/**
 * A one-shot watch that has fired keeps only its flag bits, a state epoll_ctl cannot set (it always
 * adds EPOLLERR|EPOLLHUP). Make it fire again: register it for every event and collect that event
 * with an epoll_wait inside the target. A file ready for nothing at all cannot fire: its watch stays
 * armed for EPOLLERR|EPOLLHUP alone, as close as the kernel allows.
 */
function disarm(inj: Injector, epfd: number, tfd: number, holder: number, armed: Buffer, asDumped: Buffer): void {
  watch(inj, epfd, tfd, holder, EPOLL_CTL_ADD, armed);
  const fired = inj.ok(`epoll_wait(${epfd})`, NR.epoll_wait, epfd, inj.scratch, 1, 0);
  if (fired === 0) watch(inj, epfd, tfd, holder, EPOLL_CTL_MOD, asDumped);
}

/**
 * epoll_ctl(ADD or MOD) inside the target. When the file is held by another fd than the one it was
 * registered as, it is put at its registered number just for the call (what is there is set
 * aside and put back), so that the watch is keyed by the same number as before.
 */
function watch(inj: Injector, epfd: number, tfd: number, holder: number, op: number, event: Buffer): void {
  const what = `epoll_ctl(${epfd}, ${op === EPOLL_CTL_ADD ? "ADD" : "MOD"}, ${tfd})`;
  if (holder === tfd) {
    inj.ok(what, NR.epoll_ctl, epfd, op, tfd, inj.put(0, event));
    return;
  }
  const fdFlags = inj.call(NR.fcntl, tfd, F.GETFD);
  const aside = fdFlags >= 0n ? inj.ok(`set fd ${tfd} aside`, NR.fcntl, tfd, F.DUPFD_CLOEXEC, 0) : -1;
  const ep = epfd === tfd ? aside : epfd;
  inj.ok(`dup3(${holder}, ${tfd})`, NR.dup3, holder, tfd, O.CLOEXEC);
  inj.ok(`${what} through fd ${holder}`, NR.epoll_ctl, ep, op, tfd, inj.put(0, event));
  if (aside >= 0) {
    inj.ok(`put fd ${tfd} back`, NR.dup3, aside, tfd, fdFlags & 1n ? O.CLOEXEC : 0);
    inj.ok("close", NR.close, aside);
  } else {
    inj.ok("close", NR.close, tfd);
  }
}
