import fs from "node:fs";
import { FerryError } from "../errors.js";
import { native } from "../kernel/native.js";
import { NR, PAGE_SIZE, rawSyscall } from "../kernel/sys.js";
import { readUffdMsgs } from "../kernel/uffd.js";
import { realtimeUs } from "../kernel/clock.js";
import type { Frame } from "../net/framing.js";
import type { Endpoint } from "../net/endpoint.js";
import type { Transport } from "../net/transport.js";
import { PAGES_FLAG, MAX_FRAME_PAGES, appendRange, pageOffsets, type PageRange } from "./protocol.js";
import { PageLink } from "./link.js";
import { NoPageServer } from "./noPageServer.js";
import type { EarlyChannels } from "./earlyLink.js";
import { LazyMm } from "./lazyMm.js";
import { DaemonStats, ProgressLine, mib, summarize, type LazySummary } from "./stats.js";
import type { LazyImages } from "./images.js";
import type { TargetUffd } from "./attach.js";
import { UffdGuard } from "./guard.js";
import { UffdFiller } from "./uffdFill.js";
import { FrameInProgress } from "./frameInProgress.js";
import { killTree } from "./processTree.js";

/** A fault fetches its page and up to 15 missing neighbours (64 KiB). */
const PREFETCH_PAGES = 16;
/**
 * Acknowledge pushed data every 4 MiB (the source keeps at most 32 MiB unacknowledged; TCP's own
 * flow control does the fine work, and every write here costs the kernel's work for both ends).
 */
const ACK_EVERY = 4 << 20;
const BYE_TIMEOUT_MS = 3000;
const UV_READABLE = 1;
const EAGAIN = 11, EEXIST = 17, ESRCH = 3;

export interface DaemonOptions {
  images: LazyImages;
  /** null: every page is held here (opts.local), nothing is fetched (a pre-copy migration) */
  pageServer: Endpoint | null;
  transport?: Transport;
  /** how long a lost page server may take to come back before the process is killed */
  retryForMs: number;
  /** cap of the background stream, bytes/s (0: none) */
  maxRate?: number;
  log: (line: string) => void;
  progress?: ProgressLine;
  /** pages this host already holds (a hybrid migration's pre-copied ones): installed from here, never asked for */
  local?: LocalPages;
  /** a guard prepared ahead (its start costs milliseconds); else the daemon prepares its own now */
  guard?: UffdGuard;
  /** the page server's connections, opened ahead (their handshakes cost milliseconds too) */
  early?: EarlyChannels;
}

/** Pages held at the destination, by source address, in the PAGES layout (offsets -1: a zero page). */
export interface LocalPages {
  /** the source ranges held here, sorted, [start, end) */
  ranges: { start: number; end: number }[];
  read(src: number, nrPages: number): { payload: Buffer; offsets: Int32Array };
}

/**
 * The lazy-pages daemon: fills a restored process's memory while it runs.
 *
 * The fault path, in order: the uffd becomes readable (libuv poll) → read every message →
 * apply the events (fork, mremap, remove, unmap) → for each fault: zeros if the source never
 * had the page, else ask the source (fault channel, with a few neighbours) → the answer
 * arrives → UFFDIO_COPY, which wakes the thread. Meanwhile the source pushes everything else on
 * the bulk channel, installed the same way; when no page is missing any more, the source is told
 * to go (DONE) and the daemon ends.
 */
export class LazyPagesDaemon {
  private readonly link: PageLink | NoPageServer;
  private readonly mms: LazyMm[] = [];
  /** per page: 1 = asked on the fault channel, answer not arrived */
  private readonly requested: Uint8Array;
  private reqId = 0;
  /** id of the last pushed frame read whole (GET says it: how far the stream has come here) */
  private lastPushedRead = 0;
  /** when the current uffd poll callback started (0 outside it), and when each GET went out: FaultStages */
  private pollAt = 0;
  private readonly sentAt = new Map<number, number>();
  /** faulting pages the source said are on their way in the stream, and when it said so: FaultStages.replyToCopied */
  private readonly streamWait = new Map<number, number>();
  private main: LazyMm | null = null;
  private pidWatch: { fd: number; poll: object } | null = null;
  private uffdGuard: UffdGuard | null;
  private resumedAtUs = 0;
  private unacked = 0;
  private ended = false;
  private completing = false;
  private byeTimer: NodeJS.Timeout | null = null;
  private finish!: (s: LazySummary) => void;
  readonly stats = new DaemonStats();
  readonly finished: Promise<LazySummary>;
  private readonly filler = new UffdFiller();
  /** the pushed frame being read, whose whole pages a waiting thread may take early */
  private readonly inProgress: FrameInProgress;
  /** per page: 1 = held here (opts.local), not installed yet */
  private readonly local: Uint8Array | null;

  constructor(private readonly opts: DaemonOptions) {
    const { index } = opts.images;
    this.requested = new Uint8Array(index.total);
    this.inProgress = new FrameInProgress(index);
    this.stats.pagesTotal = index.total;
    this.local = opts.local ? new Uint8Array(index.total) : null;
    // by ranges, not by page: this runs while the process waits for its restore
    for (const r of opts.local?.ranges ?? []) this.local!.fill(1, ...index.indexRange(r.start, r.end));
    this.finished = new Promise((resolve) => (this.finish = resolve));
    this.uffdGuard = opts.guard ?? null;
    this.link = !opts.pageServer ? new NoPageServer(() => this.onBye()) : new PageLink(opts.pageServer, opts.images.pid, opts.retryForMs, {
      onPages: (f, fromBulk) => this.guard(() => this.onPages(f, fromBulk)),
      onUp: (reconnected) => this.guard(() => this.onUp(reconnected)),
      onDown: (why) => this.onDown(why),
      onGiveUp: (why) => this.fail(why),
      onBye: () => this.onBye(),
      onPingRtt: (us) => {
        if (this.main && !this.completing) this.stats.stages.pingRtt.add(us);
      },
      onBulkRead: () => this.guard(() => this.fromFrameInProgress()),
    }, opts.transport, opts.maxRate ?? 0, opts.early ?? null);
  }

  /** Reach the page server before anything is restored (so a dead source fails early, cleanly). */
  connect(): Promise<void> {
    this.uffdGuard ??= UffdGuard.prepare(this.opts.images.pid); // now, not while the process waits
    return this.link.connect().catch((e: Error) => {
      this.uffdGuard?.release();
      throw new FerryError("FERRY_PAGE_SERVER", e.message);
    });
  }

  /** Take over the restored process's userfaultfd; it runs from now on. */
  adopt(t: TargetUffd, resumedAtUs = realtimeUs()): void {
    if (this.main) throw new FerryError("FERRY_LAZY_BUSY", "this lazy-pages daemon already serves a process");
    if (t.pid !== this.opts.images.pid) {
      throw new FerryError("FERRY_LAZY_PID", `the restored process is ${t.pid}, the images are of ${this.opts.images.pid}`);
    }
    this.resumedAtUs = resumedAtUs;
    this.stats.resumedAt = performance.now();
    const mm = LazyMm.initial(t.fd, this.opts.images.index, this.opts.images.vmas, t.pid);
    this.main = mm;
    this.mms.push(mm);
    // before the resume: from then on a dead daemon means a dead process
    (this.uffdGuard ??= UffdGuard.prepare(t.pid)).hold(mm.uffd);
    this.watch(mm);
    this.watchExit(t.pid);
    if (this.link.up) this.link.pending(this.pendingRanges());
    if (this.local) setImmediate(() => this.fillLocal(0));
    this.checkComplete();
  }

  /** Install what is held here in the background, 1 MiB per turn of the event loop. */
  private fillLocal(from: number): void {
    if (this.ended || this.completing || !this.local) return;
    const i = this.local.indexOf(1, from);
    if (i < 0) return;
    this.guard(() => this.installLocal(i, MAX_FRAME_PAGES));
    setImmediate(() => this.fillLocal(i));
  }

  /** Pages [i, i+max) held here (as many as are contiguous), into every address space missing them. */
  private installLocal(i: number, max: number): void {
    const { index } = this.opts.images;
    let n = 1;
    const limit = Math.min(max, index.contiguousFrom(i));
    while (n < limit && this.local![i + n]) n++;
    const { payload, offsets } = this.opts.local!.read(index.addrOf(i), n);
    this.local!.fill(0, i, i + n);
    for (let k = 0; k < n; k++) if (this.mms.some((mm) => mm.pending[i + k])) this.stats.pagesInstalled++;
    for (const mm of [...this.mms]) if (mm.alive) this.install(mm, i, n, payload, offsets);
    this.checkComplete();
  }

  /** Stop now: kill what cannot be completed (an error of ferry's own must never let it read zeros). */
  emergency(reason: string): void {
    this.fail(reason);
  }

  // ------------------------------------------------------------------ the fault path

  private watch(mm: LazyMm): void {
    mm.poll = native.pollStart(mm.uffd, UV_READABLE, (status) => {
      if (status < 0) return this.fail(`polling the userfaultfd of ${mm.label} failed (${status})`);
      this.pollAt = performance.now();
      this.guard(() => {
        this.drain(mm);
        this.serveFaults(mm);
        this.checkComplete();
      });
      this.pollAt = 0;
    });
  }

  /** Read every waiting message; events take effect at once, faults are queued for serveFaults. */
  private drain(mm: LazyMm): number {
    const msgs = readUffdMsgs(mm.uffd);
    for (const m of msgs) {
      if (process.env.FERRY_LAZY_DEBUG && m.event !== "pagefault") this.opts.log(`${mm.label}: ${JSON.stringify(m, (_k, v) => (typeof v === "number" && v > 65536 ? "0x" + v.toString(16) : v))}`);
      switch (m.event) {
        case "pagefault":
          mm.faults.push({ address: m.address, tid: m.tid });
          if (m.tid) mm.tids.add(m.tid);
          break;
        case "fork":
          this.stats.events.fork++;
          this.adoptChild(mm, m.ufd);
          break;
        case "remap":
          this.stats.events.remap++;
          this.dropped(mm.remap(m.from, m.to, m.len));
          break;
        case "remove":
          this.stats.events.remove++;
          this.dropped(mm.remove(m.start, m.end));
          break;
        case "unmap":
          this.stats.events.unmap++;
          this.dropped(mm.unmap(m.start, m.end));
          break;
        default:
          this.opts.log(`ignoring an unknown userfaultfd event ${m.code} from ${mm.label}`);
      }
    }
    return msgs.length;
  }

  private serveFaults(mm: LazyMm): void {
    while (mm.alive && mm.faults.length) this.fault(mm, mm.faults.shift()!.address);
  }

  private fault(mm: LazyMm, address: number): void {
    const page = address - (address % PAGE_SIZE);
    const src = mm.srcOf(page);
    const i = src < 0 ? -1 : this.opts.images.index.indexOf(src);
    if (i < 0 || !mm.pending[i]) {
      // never at the source (zero there), dropped by the process, or just arrived
      this.stats.localFaults++;
      return this.zeroOrWake(mm, page);
    }
    this.stats.faults++;
    if (!mm.faultStart.has(i)) mm.faultStart.set(i, performance.now());
    this.fromFrameInProgress(); // it may be there already, in the frame being read
    if (mm.pending[i] && !this.requested[i]) this.request(mm, i);
  }

  /** Ask for page i and the missing neighbours after it, on the fault channel. */
  private request(mm: LazyMm, i: number): void {
    if (this.local?.[i]) return this.installLocal(i, PREFETCH_PAGES);
    const { index } = this.opts.images;
    const max = Math.min(PREFETCH_PAGES, index.contiguousFrom(i));
    let n = 1;
    while (n < max && mm.pending[i + n] && !this.requested[i + n]) n++;
    this.requested.fill(1, i, i + n);
    if (!this.link.up) return;
    this.link.get(index.addrOf(i), n, ++this.reqId, this.lastPushedRead);
    const now = performance.now();
    this.sentAt.set(this.reqId, now);
    if (this.sentAt.size === 1) this.link.awaitingAnswer(true);
    if (this.pollAt) this.stats.stages.pollToSent.add((now - this.pollAt) * 1000);
  }

  private zeroOrWake(mm: LazyMm, page: number): void {
    for (let tries = 0; tries < 8; tries++) {
      const { errno } = this.fill(mm, page, -1, PAGE_SIZE);
      if (errno === EAGAIN) {
        this.drain(mm); // an event is waiting; its faults are served after this one
        continue;
      }
      if (errno === ESRCH) return this.forget(mm);
      if (errno) this.wake(mm, page); // EEXIST: already there; ENOENT: no mapping any more
      return;
    }
    this.wake(mm, page);
  }

  // ------------------------------------------------------------------ pages arriving

  private onPages(f: Frame, fromBulk: boolean): void {
    const arrivedAt = performance.now();
    const { index } = this.opts.images;
    const first = index.indexOf(f.vaddr);
    const n = f.nrPages;
    if (first < 0 || n < 1 || n > MAX_FRAME_PAGES || index.contiguousFrom(first) < n) {
      throw new FerryError("FERRY_PROTOCOL", `the page server sent pages this process never had (0x${f.vaddr.toString(16)} +${n})`);
    }
    if (f.flags & PAGES_FLAG.IN_FLIGHT) return this.inFlight(f, first, n, arrivedAt);
    const timed = f.flags & PAGES_FLAG.REPLY && this.replied(f.id, arrivedAt);
    const offsets = new Int32Array(n);
    const off = pageOffsets(f.payload, n, offsets);
    if (f.payload.length !== off) throw new FerryError("FERRY_PROTOCOL", `PAGES frame of ${f.payload.length} bytes, expected ${off}`);
    if (f.flags & PAGES_FLAG.REPLY) this.requested.fill(0, first, first + n);
    this.stats.bytesReceived += 32 + f.payload.length;
    const early = fromBulk ? this.inProgress.complete(f) : 0;
    this.take(first, early, n, f.payload, offsets, fromBulk);
    if (timed) this.stats.stages.replyToCopied.add((performance.now() - arrivedAt) * 1000);
    if (fromBulk) {
      this.lastPushedRead = f.id;
      this.stats.stages.bulkFrame.add((performance.now() - arrivedAt) * 1000);
      this.unacked += f.payload.length + 32;
      if (this.unacked >= ACK_EVERY) {
        this.link.ack(f.id);
        this.unacked = 0;
      }
    }
    this.progress();
    this.checkComplete();
  }

  /**
   * Pages [from, to) of a PAGES payload whose page 0 is `first`: counted, and put in every
   * address space that misses them.
   */
  private take(first: number, from: number, to: number, payload: Buffer, offsets: Int32Array, fromBulk: boolean): void {
    for (let k = from; k < to; k++) {
      if (!this.mms.some((mm) => mm.pending[first + k])) this.stats.pagesUnneeded++;
      else {
        this.stats.pagesInstalled++;
        if (offsets[k] < 0) this.stats.zeroPages++;
        if (fromBulk) this.stats.pagesPushed++;
        else this.stats.pagesByFault++;
      }
    }
    const part = offsets.subarray(from, to);
    for (const mm of [...this.mms]) if (mm.alive) this.install(mm, first + from, to - from, payload, part);
  }

  /**
   * A thread waits on a page of the pushed frame being read: what has arrived whole of that
   * frame is installed now, not when its last bytes come (a frame is up to 256 KiB).
   */
  private fromFrameInProgress(): void {
    if (!this.mms.some((mm) => mm.faultStart.size)) return;
    const partial = this.link.bulkFrameInProgress();
    const got = partial && this.inProgress.arrived(partial.header, partial.payload);
    if (!got || !this.waitedOn(got.first + got.from, got.first + got.to)) return;
    this.inProgress.took(got.to);
    this.take(got.first, got.from, got.to, partial!.payload, got.offsets, true); // completion is checked when the frame is
  }

  /** Does a thread wait on a page in [a, b)? */
  private waitedOn(a: number, b: number): boolean {
    for (const mm of this.mms) for (const i of mm.faultStart.keys()) if (i >= a && i < b) return true;
    return false;
  }

  /** The source says pages [first, first+n) are on their way on the bulk connection: they are installed from there. */
  private inFlight(f: Frame, first: number, n: number, arrivedAt: number): void {
    if (f.payload.length) throw new FerryError("FERRY_PROTOCOL", `an IN_FLIGHT reply with ${f.payload.length} bytes of data`);
    if (!(f.flags & PAGES_FLAG.REPLY)) throw new FerryError("FERRY_PROTOCOL", "IN_FLIGHT on pushed pages");
    this.requested.fill(0, first, first + n);
    this.stats.faultsInFlight++;
    if (!this.replied(f.id, arrivedAt)) return;
    // reply → copied runs until the stream brings the faulting page (it may have already)
    if (this.mms.some((mm) => mm.pending[first])) this.streamWait.set(first, arrivedAt);
    else this.stats.stages.replyToCopied.add(0);
  }

  /** The first answer to GET `id` arrived (data, or IN_FLIGHT): FaultStages.sentToReply. False if it was not timed. */
  private replied(id: number, at: number): boolean {
    const sentAt = this.sentAt.get(id);
    if (sentAt === undefined) return false; // a later part of the reply, or asked before a reconnect
    this.sentAt.delete(id);
    if (!this.sentAt.size) this.link.awaitingAnswer(false);
    this.stats.stages.sentToReply.add((at - sentAt) * 1000);
    return true;
  }

  /**
   * Put pages [first, first+n) where they belong in one address space (if it still misses them).
   * `payload` holds the non-zero pages at `offsets` (-1: a zero page).
   */
  private install(mm: LazyMm, first: number, n: number, payload: Buffer, offsets: Int32Array): void {
    const base = Number(native.addressOf(payload));
    const srcBase = this.opts.images.index.addrOf(first);
    let k = 0;
    while (k < n && mm.alive) {
      const i = first + k;
      if (!mm.pending[i]) {
        k++;
        continue;
      }
      const at = mm.dstRun(srcBase + k * PAGE_SIZE);
      if (!at) {
        this.settle(mm, i, false); // mapped nowhere any more
        k++;
        continue;
      }
      const { dst } = at;
      const zero = offsets[k] < 0;
      // one ioctl for the pages that follow in the same segment (contiguous here too), alike, still missing
      const most = Math.min(n - k, Math.floor(at.len / PAGE_SIZE));
      let m = 1;
      while (m < most && mm.pending[i + m] && offsets[k + m] < 0 === zero) m++;
      const { done, errno } = this.fill(mm, dst, zero ? -1 : base + offsets[k], m * PAGE_SIZE);
      const pages = Math.floor(done / PAGE_SIZE);
      for (let p = 0; p < pages; p++) this.settle(mm, i + p, true);
      k += pages;
      if (!errno) continue;
      if (errno === EAGAIN) {
        // an event is unread: read it, then the rest of this frame goes where it now belongs
        if (this.drain(mm) > 0) continue;
        // read, but the process has not finished it yet: try again on the next turn
        this.defer(mm, first, n, payload, offsets);
        break;
      }
      if (errno === ESRCH) return this.forget(mm);
      // EEXIST: that page is already there; ENOENT/EFAULT: its mapping is gone
      this.settle(mm, i + pages, errno === EEXIST);
      k++;
    }
    this.serveFaults(mm);
  }

  private defer(mm: LazyMm, first: number, n: number, payload: Buffer, offsets: Int32Array): void {
    const copy = Buffer.from(payload); // the decoder reuses its memory
    setImmediate(() => {
      if (!mm.alive || this.ended) return;
      this.guard(() => {
        this.install(mm, first, n, copy, offsets);
        this.checkComplete();
      });
    });
  }

  /** Page i is no longer missing in mm (installed, or it needs nothing any more). */
  private settle(mm: LazyMm, i: number, installed: boolean): void {
    if (!mm.pending[i]) return;
    mm.pending[i] = 0;
    mm.pendingCount--;
    const t = mm.faultStart.get(i);
    if (t !== undefined) {
      mm.faultStart.delete(i);
      if (installed) this.stats.latency.add((performance.now() - t) * 1000);
    }
    const answered = this.streamWait.get(i);
    if (answered !== undefined) {
      this.streamWait.delete(i);
      this.stats.stages.replyToCopied.add((performance.now() - answered) * 1000);
    }
  }

  private fill(mm: LazyMm, dst: number, src: number, len: number): { done: number; errno: number } {
    return this.filler.fill(mm.uffd, dst, src, len);
  }

  private wake(mm: LazyMm, page: number): void {
    this.filler.wake(mm.uffd, page, PAGE_SIZE);
  }

  // ------------------------------------------------------------------ address spaces

  private adoptChild(parent: LazyMm, ufd: number): void {
    const child = parent.forked(ufd, `a child of ${parent.label}`);
    this.mms.push(child);
    this.watch(child);
  }

  /** An address space is gone (its process exited): stop filling it. */
  private forget(mm: LazyMm): void {
    if (!mm.alive) return;
    this.detach(mm);
    this.mms.splice(this.mms.indexOf(mm), 1);
    const orphaned = this.opts.images.index.ranges(mm.pending);
    mm.pending.fill(0);
    mm.pendingCount = 0;
    this.dropped(orphaned, false);
    this.checkComplete();
  }

  /** Pages one address space stopped wanting: the source need not push those nobody wants. */
  private dropped(ranges: PageRange[], count = true): void {
    if (!ranges.length) return;
    const { index } = this.opts.images;
    const unwanted: PageRange[] = [];
    for (const r of ranges) {
      if (count) this.stats.droppedPages += r.nrPages;
      const i0 = index.indexOf(r.vaddr);
      for (let k = 0; k < r.nrPages; k++) {
        if (this.mms.some((mm) => mm.pending[i0 + k])) continue;
        appendRange(unwanted, r.vaddr + k * PAGE_SIZE, 1);
      }
    }
    if (this.link.up) this.link.drop(unwanted);
  }

  /** Every page still missing somewhere, as source ranges. */
  private pendingRanges(): PageRange[] {
    const { index } = this.opts.images;
    if (this.mms.length === 1 && !this.local) return index.ranges(this.mms[0].pending);
    // at the resume (every page missing): what is not held here, at memchr speed
    if (this.mms.length === 1 && this.mms[0].pendingCount === index.total) return index.ranges(this.local!, 0);
    const union = new Uint8Array(index.total);
    for (const mm of this.mms) for (let i = 0; i < union.length; i++) union[i] |= mm.pending[i];
    if (this.local) for (let i = 0; i < union.length; i++) union[i] &= this.local[i] ^ 1; // never asked of the source
    return index.ranges(union);
  }

  private watchExit(pid: number): void {
    const r = rawSyscall(NR.pidfd_open, pid, 0);
    if (r < 0n) return;
    const fd = Number(r);
    this.pidWatch = {
      fd,
      poll: native.pollStart(fd, UV_READABLE, () => {
        this.stopExitWatch();
        if (this.main?.alive) this.forget(this.main);
      }),
    };
  }
  private stopExitWatch(): void {
    if (!this.pidWatch) return;
    native.pollStop(this.pidWatch.poll);
    fs.closeSync(this.pidWatch.fd);
    this.pidWatch = null;
  }

  // ------------------------------------------------------------------ link events

  private onUp(reconnected: boolean): void {
    if (reconnected) {
      this.stats.reconnects = this.link.reconnects;
      this.opts.log(`reconnected to the page server`);
    }
    this.inProgress.forget();
    if (!this.main || this.completing) return;
    this.link.pending(this.pendingRanges());
    // answers lost with the old connection: ask again for what threads wait on
    this.requested.fill(0);
    this.sentAt.clear();
    this.link.awaitingAnswer(false);
    for (const mm of this.mms) for (const i of mm.faultStart.keys()) if (mm.pending[i] && !this.requested[i]) this.request(mm, i);
  }

  private onDown(why: string): void {
    if (this.ended) return;
    if (this.completing) {
      // the source went away after DONE: that is its goodbye
      return this.end("complete");
    }
    this.opts.log(`lost the page server (${why}); reconnecting for up to ${Math.round(this.opts.retryForMs / 1000)} s, faulting threads wait`);
  }

  private onBye(): void {
    if (this.completing) this.end("complete");
  }

  // ------------------------------------------------------------------ ending

  private checkComplete(): void {
    if (this.ended || this.completing || !this.main) return;
    if (this.mms.some((mm) => mm.pendingCount > 0)) return;
    this.completing = true;
    this.stats.allArrivedAt = performance.now();
    this.progress(true);
    // nothing is missing (or nothing can want it any more): the source may go, and the uffd
    // too (its last copy with it: a fault on a page the source never had is the kernel's again)
    for (const mm of [...this.mms]) this.detach(mm);
    this.uffdGuard?.release();
    if (!this.link.up) return this.end(this.main.alive ? "complete" : "process-exited");
    this.link.done();
    this.byeTimer = setTimeout(() => this.end(this.main?.alive === false ? "process-exited" : "complete"), BYE_TIMEOUT_MS);
  }

  /** Stop watching an address space that misses nothing (its process keeps running). */
  private detach(mm: LazyMm): void {
    if (mm.poll) native.pollStop(mm.poll);
    mm.poll = null;
    mm.close();
  }

  /** The memory can never come: kill the process rather than let it run on anything else. */
  private fail(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    const missing = this.mms.reduce((n, mm) => n + mm.pendingCount, 0);
    const victims = this.killAll();
    this.opts.progress?.clear();
    const what = victims.length ? `killed process ${victims.join(", ")} (${missing} pages never arrived; it never ran on missing memory)` : "no process to kill";
    const error = `${reason}: ${what}`;
    this.link.abort(reason);
    this.close(true);
    this.finish(this.summary("failed", error));
  }

  /** SIGKILL the restored process, its descendants and every thread seen faulting. */
  private killAll(): number[] {
    if (!this.main) return []; // nothing was handed over: nothing of ours runs
    return killTree(this.main.pid, this.mms.flatMap((mm) => [...mm.tids]));
  }

  private end(outcome: LazySummary["outcome"]): void {
    if (this.ended) return;
    this.ended = true;
    this.close();
    this.finish(this.summary(outcome));
  }

  private close(graceful = false): void {
    this.uffdGuard?.release();
    if (this.byeTimer) clearTimeout(this.byeTimer);
    this.stopExitWatch();
    for (const mm of [...this.mms]) this.detach(mm);
    this.link.close(graceful);
    this.opts.progress?.clear();
  }

  private summary(outcome: LazySummary["outcome"], error?: string): LazySummary {
    const { images } = this.opts;
    return summarize(this.stats, images.pid, {
      outcome, error, frozenAtUs: images.inventory.frozenAtUs, resumedAtUs: this.resumedAtUs,
      imageBytes: images.imageBytes, rttMs: this.link.rttMs,
    });
  }

  private progress(force = false): void {
    const p = this.opts.progress;
    if (!p?.enabled) return;
    const s = this.stats;
    const secs = (performance.now() - (s.resumedAt || s.startedAt)) / 1000;
    p.update(() => `ferry lazy-pages: ${mib(s.pagesInstalled * PAGE_SIZE)}/${mib(s.pagesTotal * PAGE_SIZE)} MiB, ${(s.pagesInstalled * PAGE_SIZE / 1e6 / Math.max(secs, 1e-3)).toFixed(0)} MB/s, ${s.faults} faults served`, force);
  }

  /** Run a handler; an error of ours kills the process (never leaves it on missing memory). */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (e instanceof FerryError && e.code === "FERRY_PROTOCOL") throw e; // the channel drops and reconnects
      // a page with no copy to be had (pre-copy: not in the agent's store, no page server to ask): not ours, and it says so itself
      if (e instanceof FerryError && e.code === "FERRY_PAGE_MISSING") this.fail(e.message);
      else this.fail(`internal error in the lazy-pages daemon: ${(e as Error).message}`);
    }
  }
}
