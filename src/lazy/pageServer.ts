import type net from "node:net";
import { FerryError } from "../errors.js";
import { PAGE_SIZE } from "../kernel/sys.js";
import { vmRead } from "../kernel/mem.js";
import { FrameChannel } from "../net/channel.js";
import { HEADER_SIZE, encodeHeader, type Frame } from "../net/framing.js";
import { formatEndpoint, type Endpoint } from "../net/endpoint.js";
import { defaultTransport, type Transport } from "../net/transport.js";
import { CMD, GET_PAYLOAD, PAGES_FLAG, MAX_FRAME_PAGES, MAX_PAYLOAD, PROTOCOL_VERSION, bitmapBytes, decodeRanges, packPages, payloadLimit, type Hello } from "./protocol.js";
import { indexOfValue, type PageIndex } from "./pageIndex.js";
import type { FrozenProcess } from "./frozen.js";
import { Latencies, cpuMsSince, type StageUs } from "./stats.js";

/** Pages per pushed frame: small enough that a fault request waits little behind one. */
const BULK_PAGES = 64;
/** Bulk bytes sent but not yet acknowledged: bounds buffers, and how far a fault's page can be behind in the stream. */
const BULK_WINDOW = 32 << 20;
/**
 * A faulting page pushed already is left to the stream (IN_FLIGHT) only if at most this much of
 * the stream is ahead of it at the destination (about a millisecond at the stream's rate);
 * further back, it is sent again on the fault connection rather than wait behind all that.
 */
const STREAM_WAIT_MAX = 256 << 10;
/** What the stream knows of a page (PageServer.sent). */
const TO_PUSH = 0;
/** pushed on the bulk connection the destination reads now */
const PUSHED = 1;
/** the destination holds it, does not want it, or was sent it as a reply */
const HELD = 2;
/**
 * The destination PINGs every second: nothing heard for this long and the link is taken for cut
 * (TCP alone would retry for many minutes), which starts the wait for it to come back.
 */
const SILENCE_MS = 5000;

export interface PageServerOptions {
  process: FrozenProcess;
  index: PageIndex;
  listen: Endpoint;
  transport?: Transport;
  /** how long a lost destination may take to come back before the source is left frozen */
  retryForMs: number;
  log?: (line: string) => void;
  onProgress?: (s: SourceStats) => void;
}

export interface SourceStats {
  pagesTotal: number;
  pagesSent: number;
  zeroPagesSent: number;
  bytesSent: number;
  faultRequests: number;
  /** pages sent again because a fault asked for them while their pushed copy was in flight */
  pagesResent: number;
  connections: number;
  /** CPU time of this process (user + system) until now */
  cpuMs: number;
  /** a GET decoded → the faulting page's reply written (µs) */
  faultServiceUs: StageUs | null;
  /** one turn of the bulk stream (read, check for zeros, write one frame): what a GET may wait behind (µs) */
  pumpTurnUs: StageUs | null;
}

export type PageServerOutcome =
  | { delivered: true; stats: SourceStats }
  /** destinationGaveUp: it said so (ABORT), which it does only once its copy is dead */
  | { delivered: false; reason: string; stats: SourceStats; destinationGaveUp?: boolean };

/**
 * The source of a lazy migration: serves the pages of a frozen process straight from its memory
 * (process_vm_readv, no disk), pushes the ones nobody asked for, and ends when the destination
 * confirms it holds every page (the source is killed then) or when the destination is gone for
 * good (the source stays frozen).
 */
export class PageServer {
  private server: net.Server | null = null;
  private fault: FrameChannel | null = null;
  private bulk: FrameChannel | null = null;
  /** per page: TO_PUSH, PUSHED or HELD */
  private readonly sent: Uint8Array;
  /**
   * Order of the latest fault connection and of the latest complete PENDING: pages PUSHED are
   * known to be on their way only if the destination said what it misses after that fault
   * connection came (a new one means the bulk connection was replaced too).
   */
  private epoch = 0;
  private faultEpoch = 0;
  private streamEpoch = 0;
  private cursor = 0;
  private readonly cpuAtStart = process.cpuUsage();
  private readonly faultService = new Latencies();
  private readonly pumpTurn = new Latencies();
  /** frame buffers (header, bitmap, pages), recycled once the kernel has their bytes (no garbage per page sent) */
  private readonly pool: Buffer[] = [];
  private pendingBatchOpen = false;
  private streaming = false;
  private pumpScheduled = false;
  private seq = 0;
  /** pushed frames not acknowledged yet: pages [first, first+n) in `bytes` */
  private inflight: { seq: number; bytes: number; first: number; n: number }[] = [];
  private inflightBytes = 0;
  private maxRate = 0;
  private rateStart = 0;
  private rateBytes = 0;
  private lostTimer: NodeJS.Timeout | null = null;
  private silenceTimer: NodeJS.Timeout | null = null;
  private finished!: (o: PageServerOutcome) => void;
  readonly outcome: Promise<PageServerOutcome>;
  readonly stats: SourceStats;

  constructor(private readonly opts: PageServerOptions) {
    this.sent = new Uint8Array(opts.index.total);
    this.stats = { pagesTotal: opts.index.total, pagesSent: 0, zeroPagesSent: 0, bytesSent: 0, faultRequests: 0, pagesResent: 0, connections: 0, cpuMs: 0, faultServiceUs: null, pumpTurnUs: null };
    this.outcome = new Promise((resolve) => (this.finished = resolve));
  }

  private get pid(): number {
    return this.opts.process.pid;
  }

  async start(): Promise<void> {
    const transport = this.opts.transport ?? defaultTransport();
    try {
      this.server = await transport.listen(this.opts.listen, (s) => this.accept(s));
    } catch (e) {
      throw new FerryError("FERRY_LISTEN", `cannot listen on ${formatEndpoint(this.opts.listen)}: ${(e as Error).message}`);
    }
    let lastTick = performance.now();
    this.silenceTimer = setInterval(() => {
      const now = performance.now();
      const late = now - lastTick > 2000; // our own event loop was busy: judge on the next tick
      lastTick = now;
      const open = [this.fault, this.bulk].filter((c) => c?.isOpen) as FrameChannel[];
      if (late || !open.length || now - Math.max(...open.map((c) => c.lastHeard)) <= SILENCE_MS) return;
      for (const c of open) c.close(`no word from the destination for ${SILENCE_MS / 1000} s`);
    }, 1000);
    this.silenceTimer.unref();
  }

  /** Stop serving now (Ctrl-C): the source stays frozen. */
  abandon(reason: string): void {
    this.end({ delivered: false, reason, stats: this.stats });
  }

  private accept(socket: net.Socket): void {
    this.stats.connections++;
    let role: Hello["role"] | null = null;
    const ch = new FrameChannel(socket, payloadLimit, MAX_PAYLOAD, (f) => {
      if (role === null) {
        role = this.hello(ch, f);
        return;
      }
      this.onFrame(ch, f);
    }, (c, why) => this.lost(c, why));
  }

  private hello(ch: FrameChannel, f: Frame): Hello["role"] | null {
    let h: Hello;
    try {
      if (f.cmd !== CMD.HELLO) throw new Error("expected HELLO");
      h = JSON.parse(f.payload.toString("utf8")) as Hello;
      if (h.version !== PROTOCOL_VERSION) throw new Error(`protocol version ${h.version}, this ferry speaks ${PROTOCOL_VERSION}`);
      if (h.pid !== this.pid) throw new Error(`asks for process ${h.pid}, this page server serves ${this.pid}`);
      if (h.role !== "fault" && h.role !== "bulk") throw new Error(`unknown role ${String(h.role)}`);
    } catch (e) {
      this.opts.log?.(`refused a connection from ${ch.socket.remoteAddress}: ${(e as Error).message}`);
      ch.close("refused");
      return null;
    }
    const old = h.role === "fault" ? this.fault : this.bulk;
    if (old && old !== ch) old.close("replaced by a new connection");
    if (h.role === "fault") {
      this.fault = ch;
      this.faultEpoch = ++this.epoch;
    } else {
      this.bulk = ch;
      this.maxRate = h.maxRate > 0 ? h.maxRate : 0;
      this.inflight = [];
      this.inflightBytes = 0;
      this.streaming = false; // until the destination says what it still misses
    }
    if (this.lostTimer && this.fault?.isOpen && this.bulk?.isOpen) {
      clearTimeout(this.lostTimer);
      this.lostTimer = null;
    }
    ch.send({ cmd: CMD.HELLO_OK, flags: 0, nrPages: 0, vaddr: 0, id: 0 }, Buffer.from(JSON.stringify({ version: PROTOCOL_VERSION, pid: this.pid, pages: this.opts.index.total })));
    return h.role;
  }

  private onFrame(ch: FrameChannel, f: Frame): void {
    switch (f.cmd) {
      case CMD.GET:
        return this.get(ch, f);
      case CMD.PENDING:
        return this.pending(f);
      case CMD.DROP:
        for (const r of decodeRanges(f.payload)) this.mark(r.vaddr, r.nrPages);
        return;
      case CMD.ACK:
        while (this.inflight.length && this.inflight[0].seq <= f.id) this.inflightBytes -= this.inflight.shift()!.bytes;
        return this.schedulePump();
      case CMD.PING:
        ch.send({ cmd: CMD.PONG, flags: 0, nrPages: 0, vaddr: 0, id: f.id });
        return;
      case CMD.DONE:
        return this.done(ch);
      case CMD.ABORT:
        return this.end({ delivered: false, reason: `the destination gave up: ${safeReason(f.payload)}`, stats: this.stats, destinationGaveUp: true });
      default:
        ch.close(`unexpected command ${f.cmd}`);
    }
  }

  /**
   * A fault: answer at once on the fault channel, and continue pushing from there (locality).
   * Pages already pushed on the bulk connection are not sent twice: they are ahead in that
   * stream, and a second copy would only wait behind the fault (the reply says IN_FLIGHT).
   */
  private get(ch: FrameChannel, f: Frame): void {
    const { index } = this.opts;
    const first = index.indexOf(f.vaddr);
    if (first < 0 || f.nrPages < 1 || f.nrPages > MAX_FRAME_PAGES || index.contiguousFrom(first) < f.nrPages) {
      ch.close(`request for pages the source does not hold (0x${f.vaddr.toString(16)} +${f.nrPages})`);
      return;
    }
    this.stats.faultRequests++;
    const t0 = performance.now();
    const near = this.nearHead(f.payload.length === GET_PAYLOAD ? Number(f.payload.readBigUInt64LE(0)) : 0);
    const rest = this.runsToSend(first + 1, first + f.nrPages, near);
    const more = rest.length ? PAGES_FLAG.MORE : 0;
    // the faulting page alone first: the thread waits on it, not on its neighbours
    if (this.onItsWay(first, near)) ch.send({ cmd: CMD.PAGES, flags: PAGES_FLAG.REPLY | PAGES_FLAG.IN_FLIGHT | more, nrPages: 1, vaddr: f.vaddr, id: f.id });
    else if (this.sendReply(ch, first, 1, more, f.id) < 0) return;
    this.faultService.add((performance.now() - t0) * 1000);
    for (let k = 0; k < rest.length; k++) {
      if (this.sendReply(ch, rest[k].first, rest[k].n, k < rest.length - 1 ? PAGES_FLAG.MORE : 0, f.id) < 0) return;
    }
    this.cursor = first + f.nrPages;
  }

  /**
   * The pushed frames the destination will read soon: on the bulk connection it reads now, after
   * the frame it read last (`lastRead`), with at most STREAM_WAIT_MAX of the stream ahead of each.
   */
  private nearHead(lastRead: number): { first: number; n: number }[] {
    if (!this.streaming || this.streamEpoch <= this.faultEpoch) return [];
    const near: { first: number; n: number }[] = [];
    let ahead = 0;
    for (const fr of this.inflight) {
      if (fr.seq <= lastRead) continue;
      if (ahead > STREAM_WAIT_MAX) break;
      near.push(fr);
      ahead += fr.bytes;
    }
    return near;
  }

  /** Page i was pushed in one of the frames `near` the head of the stream (else: acknowledged, or far back: send it). */
  private onItsWay(i: number, near: { first: number; n: number }[]): boolean {
    return this.sent[i] === PUSHED && near.some((fr) => i >= fr.first && i < fr.first + fr.n);
  }

  /** The runs of pages in [from, to) a reply must carry: those not on their way. */
  private runsToSend(from: number, to: number, near: { first: number; n: number }[]): { first: number; n: number }[] {
    const runs: { first: number; n: number }[] = [];
    for (let i = from; i < to; i++) {
      if (this.onItsWay(i, near)) continue;
      const last = runs[runs.length - 1];
      if (last && last.first + last.n === i) last.n++;
      else runs.push({ first: i, n: 1 });
    }
    return runs;
  }

  private sendReply(ch: FrameChannel, first: number, n: number, flags: number, id: number): number {
    for (let i = first; i < first + n; i++) if (this.sent[i] !== TO_PUSH) this.stats.pagesResent++;
    return this.trySendPages(ch, first, n, PAGES_FLAG.REPLY | flags, id);
  }

  /** What the destination still misses (first thing on every bulk connection): push exactly that. */
  private pending(f: Frame): void {
    if (!this.pendingBatchOpen) {
      this.sent.fill(HELD);
      this.pendingBatchOpen = true;
    }
    const { index } = this.opts;
    for (const r of decodeRanges(f.payload)) {
      const [a, b] = index.indexRange(r.vaddr, r.vaddr + r.nrPages * PAGE_SIZE);
      this.sent.fill(TO_PUSH, a, b);
    }
    if (f.flags & PAGES_FLAG.LAST) {
      this.pendingBatchOpen = false;
      this.streaming = true;
      this.streamEpoch = ++this.epoch;
      this.rateStart = performance.now();
      this.rateBytes = 0;
      this.schedulePump();
    }
  }

  private mark(vaddr: number, nrPages: number): void {
    const [a, b] = this.opts.index.indexRange(vaddr, vaddr + nrPages * PAGE_SIZE);
    this.sent.fill(HELD, a, b);
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Push one chunk of what is still unsent, from the cursor on; then let requests in. */
  private pump(): void {
    const ch = this.bulk;
    if (!ch?.isOpen || !this.streaming || this.inflightBytes >= BULK_WINDOW) return;
    if (ch.needsDrain) {
      ch.socket.once("drain", () => this.schedulePump());
      return;
    }
    if (this.maxRate) {
      const allowed = ((performance.now() - this.rateStart) / 1000) * this.maxRate;
      if (this.rateBytes > allowed) {
        setTimeout(() => this.schedulePump(), Math.max(1, ((this.rateBytes - allowed) / this.maxRate) * 1000));
        return;
      }
    }
    const { index } = this.opts;
    let i = indexOfValue(this.sent, TO_PUSH, this.cursor, index.total);
    if (i >= index.total) i = indexOfValue(this.sent, TO_PUSH, 0, index.total);
    if (i >= index.total) return; // all pushed: wait for DONE
    let n = 1;
    const max = Math.min(BULK_PAGES, index.contiguousFrom(i));
    while (n < max && this.sent[i + n] === TO_PUSH) n++;
    const seq = ++this.seq;
    const t0 = performance.now();
    const bytes = this.trySendPages(ch, i, n, 0, seq);
    if (bytes < 0) return;
    this.pumpTurn.add((performance.now() - t0) * 1000);
    this.inflight.push({ seq, bytes, first: i, n });
    this.inflightBytes += bytes;
    this.rateBytes += bytes;
    this.cursor = i + n;
    this.schedulePump();
  }

  /** sendPages, ending the service when the source's memory cannot be read (it died). */
  private trySendPages(ch: FrameChannel, first: number, n: number, flags: number, id: number): number {
    try {
      return this.sendPages(ch, first, n, flags, id);
    } catch (e) {
      this.end({ delivered: false, reason: (e as Error).message, stats: this.stats });
      return -1;
    }
  }

  /**
   * Read pages [first, first+n) (contiguous in memory) from the frozen process and send them as
   * one PAGES frame: a bitmap of the zero pages, then the others' data. Returns the bytes sent.
   */
  private sendPages(ch: FrameChannel, first: number, n: number, flags: number, id: number): number {
    const addr = this.opts.index.addrOf(first);
    const bm = bitmapBytes(n);
    const size = HEADER_SIZE + bitmapBytes(BULK_PAGES) + BULK_PAGES * PAGE_SIZE;
    const pooled = HEADER_SIZE + bm + n * PAGE_SIZE <= size;
    const frame = pooled ? this.pool.pop() ?? Buffer.allocUnsafeSlow(size) : Buffer.allocUnsafe(HEADER_SIZE + bm + n * PAGE_SIZE);
    const payload = frame.subarray(HEADER_SIZE);
    const got = vmRead(this.pid, payload.subarray(bm), [{ addr, len: n * PAGE_SIZE }]);
    if (got !== n * PAGE_SIZE) {
      if (pooled) this.pool.push(frame);
      throw new FerryError("FERRY_SOURCE_MEMORY", `cannot read the source's pages at 0x${addr.toString(16)} (${got} of ${n * PAGE_SIZE} bytes)`);
    }
    const out = packPages(payload, n);
    this.stats.zeroPagesSent += n - (out - bm) / PAGE_SIZE;
    for (let k = first; k < first + n; k++) {
      if (this.sent[k] === TO_PUSH) this.stats.pagesSent++;
      this.sent[k] = flags & PAGES_FLAG.REPLY ? HELD : PUSHED;
    }
    this.stats.bytesSent += HEADER_SIZE + out;
    encodeHeader({ cmd: CMD.PAGES, flags, nrPages: n, vaddr: addr, id }, out, frame);
    ch.sendEncoded(frame.subarray(0, HEADER_SIZE + out), pooled ? () => this.pool.push(frame) : undefined);
    this.opts.onProgress?.(this.stats);
    return HEADER_SIZE + out;
  }

  /** The destination holds every page: the source copy goes, then we say goodbye. */
  private done(ch: FrameChannel): void {
    this.opts.process.kill();
    const others = [this.fault, this.bulk].filter((c) => c && c !== ch) as FrameChannel[];
    this.end({ delivered: true, stats: this.stats });
    for (const other of others) other.close("done");
    ch.send({ cmd: CMD.BYE, flags: 0, nrPages: 0, vaddr: 0, id: 0 });
    ch.end();
  }

  private lost(ch: FrameChannel, why: string): void {
    if (ch !== this.fault && ch !== this.bulk) return;
    if (ch === this.fault) this.fault = null;
    if (ch === this.bulk) {
      this.bulk = null;
      this.streaming = false;
    }
    if (this.lostTimer || !this.server) return;
    this.opts.log?.(`lost the destination (${why}); waiting ${Math.round(this.opts.retryForMs / 1000)} s for it to come back`);
    this.lostTimer = setTimeout(() => {
      this.lostTimer = null;
      if (this.fault?.isOpen && this.bulk?.isOpen) return;
      this.end({ delivered: false, reason: `the destination went away (${why}) and did not come back within ${Math.round(this.opts.retryForMs / 1000)} s`, stats: this.stats });
    }, this.opts.retryForMs);
  }

  private end(o: PageServerOutcome): void {
    if (!this.server) return;
    this.stats.cpuMs = cpuMsSince(this.cpuAtStart);
    this.stats.faultServiceUs = this.faultService.brief();
    this.stats.pumpTurnUs = this.pumpTurn.brief();
    this.server.close();
    this.server = null;
    if (this.lostTimer) clearTimeout(this.lostTimer);
    this.lostTimer = null;
    if (this.silenceTimer) clearInterval(this.silenceTimer);
    this.silenceTimer = null;
    if (!o.delivered) {
      this.fault?.close("abandoned");
      this.bulk?.close("abandoned");
      this.opts.process.release();
    }
    this.finished(o);
  }
}

function safeReason(b: Buffer): string {
  try {
    const o = JSON.parse(b.toString("utf8")) as { reason?: unknown };
    return String(o.reason ?? "no reason given").slice(0, 500);
  } catch {
    return "no reason given";
  }
}
