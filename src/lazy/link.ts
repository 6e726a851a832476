import { randomBytes } from "node:crypto";
import { FerryError } from "../errors.js";
import { FrameChannel } from "../net/channel.js";
import type { Frame } from "../net/framing.js";
import { formatEndpoint, type Endpoint } from "../net/endpoint.js";
import { defaultTransport, type Transport } from "../net/transport.js";
import { CMD, GET_PAYLOAD, MAX_PAYLOAD, PAGES_FLAG, MAX_RANGES_PER_FRAME, encodeRanges, payloadLimit, type Hello, type PageRange } from "./protocol.js";
import { sayHello, type EarlyChannels } from "./earlyLink.js";

/** FERRY_FAULT_TRACE=1: a PING every 20 ms, the fault connection's own round trip under load (FaultStages.pingRtt) */
const PING_EVERY_MS = process.env.FERRY_FAULT_TRACE ? 20 : 1000;
/** Nothing heard for this long on a link with work outstanding: it is dead even if TCP does not know. */
const SILENCE_MS = 4000;
const RETRY_EVERY_MS = 200;
/**
 * Pushed data read per turn of the event loop: the stream never holds the loop for long, so a
 * fault (the uffd, the fault connection) is served between two slices of it instead of waiting
 * behind everything the kernel has buffered. (Faults are not served by stopping the stream: the
 * page a thread waits on is most often in it, on its way.)
 */
const BULK_READ_PER_TURN = 256 << 10;
/** ... and while the answer to a GET is awaited: one TLS record, then the fault connection's turn. */
const BULK_READ_PER_TURN_ASKING = 16 << 10;
const HELLO_TIMEOUT_MS = 2000;
/** A connection attempt into a dead link would wait for TCP's own timeout (minutes): give up sooner. */
const CONNECT_TIMEOUT_MS = 1000;

export interface LinkHandlers {
  onPages(f: Frame, fromBulk: boolean): void;
  /** both channels are up (again): say what is missing, ask again for what faults wait on */
  onUp(reconnected: boolean): void;
  onDown(why: string): void;
  /** the page server stayed unreachable for the whole retry window */
  onGiveUp(why: string): void;
  onBye(): void;
  /** a PING's round trip on the fault connection (µs) */
  onPingRtt?(us: number): void;
  /** a read on the bulk connection (the frame it is in the middle of: bulkFrameInProgress) */
  onBulkRead?(): void;
}

/**
 * The destination's link to the page server: a fault channel (requests and their answers only)
 * and a bulk channel (the pushed stream). When either breaks, both are dropped and the link
 * reconnects every 200 ms for `retryForMs`; meanwhile requests wait (the faulting threads stay
 * blocked: nothing is ever filled with zeros instead).
 */
export class PageLink {
  private fault: FrameChannel | null = null;
  private bulk: FrameChannel | null = null;
  private readonly session: string;
  private downSince = 0;
  private lastWhy = "";
  private retryTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private connecting = false;
  private asking = false;
  private closed = false;
  private everUp = false;
  reconnects = 0;
  /** the smallest PING/PONG round trip seen (ms): the link's own latency, for the summary */
  rttMs = 0;
  private pingSentAt = 0;
  private pingId = 0;
  private onFirstUp: ((err?: Error) => void) | null = null;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly pid: number,
    private readonly retryForMs: number,
    private readonly handlers: LinkHandlers,
    private readonly transport: Transport = defaultTransport(),
    private readonly maxRate = 0,
    /** the two connections, opened before the freeze: the first attempt takes them */
    private readonly early: EarlyChannels | null = null,
  ) {
    this.session = early?.session ?? randomBytes(8).toString("hex");
  }

  get up(): boolean {
    return !!(this.fault?.isOpen && this.bulk?.isOpen);
  }

  /** Connect (retrying within the window); resolves once both channels are up. */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.onFirstUp = (err) => (err ? reject(err) : resolve());
      this.downSince = performance.now();
      this.attempt();
    });
  }

  /** Ask for pages on the fault channel; `lastRead`: the last pushed frame read, which tells the source how far behind in the stream they would be. */
  get(vaddr: number, nrPages: number, id: number, lastRead: number): void {
    const payload = Buffer.allocUnsafe(GET_PAYLOAD);
    payload.writeBigUInt64LE(BigInt(lastRead));
    this.fault?.send({ cmd: CMD.GET, flags: 0, nrPages, vaddr, id }, payload);
  }
  /** The pushed frame being read, when its payload has partly arrived. */
  bulkFrameInProgress(): ReturnType<FrameChannel["partialFrame"]> {
    return this.bulk?.partialFrame() ?? null;
  }
  /** Whether a GET's answer is awaited: the bulk connection is then read in smaller slices. */
  awaitingAnswer(asking: boolean): void {
    this.asking = asking;
    this.bulk?.limitReadsPerTurn(asking ? BULK_READ_PER_TURN_ASKING : BULK_READ_PER_TURN);
  }
  ack(id: number): void {
    this.bulk?.send({ cmd: CMD.ACK, flags: 0, nrPages: 0, vaddr: 0, id });
  }
  /** What the destination still misses: the source pushes exactly that, and forgets the rest. */
  pending(ranges: PageRange[]): void {
    this.sendRanges(CMD.PENDING, ranges, true);
  }
  drop(ranges: PageRange[]): void {
    if (ranges.length) this.sendRanges(CMD.DROP, ranges, false);
  }
  done(): void {
    this.fault?.send({ cmd: CMD.DONE, flags: 0, nrPages: 0, vaddr: 0, id: 0 });
  }
  abort(reason: string): void {
    this.fault?.send({ cmd: CMD.ABORT, flags: 0, nrPages: 0, vaddr: 0, id: 0 }, Buffer.from(JSON.stringify({ reason })));
  }

  private sendRanges(cmd: number, ranges: PageRange[], markLast: boolean): void {
    const ch = this.bulk;
    if (!ch) return;
    for (let i = 0; i === 0 || i < ranges.length; i += MAX_RANGES_PER_FRAME) {
      const part = ranges.slice(i, i + MAX_RANGES_PER_FRAME);
      const last = i + MAX_RANGES_PER_FRAME >= ranges.length;
      ch.send({ cmd, flags: markLast && last ? PAGES_FLAG.LAST : 0, nrPages: 0, vaddr: 0, id: 0 }, encodeRanges(part));
    }
  }

  /** Stop: now, or (graceful) once what is queued has been written. */
  close(graceful = false): void {
    this.closed = true;
    this.early?.close();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    for (const ch of [this.fault, this.bulk]) {
      if (graceful) ch?.end();
      else ch?.close("closing");
    }
  }

  private async attempt(): Promise<void> {
    if (this.closed || this.connecting) return;
    this.connecting = true;
    try {
      const [fault, bulk] = await Promise.all([this.open("fault"), this.open("bulk")].map((p) => p.catch((e: Error) => e)));
      if (fault instanceof Error || bulk instanceof Error) {
        if (!(fault instanceof Error)) fault.close("partner failed");
        if (!(bulk instanceof Error)) bulk.close("partner failed");
        throw fault instanceof Error ? fault : bulk;
      }
      if (this.closed) {
        fault.close("closing");
        bulk.close("closing");
        return;
      }
      this.fault = fault;
      this.bulk = bulk;
      bulk.limitReadsPerTurn(this.asking ? BULK_READ_PER_TURN_ASKING : BULK_READ_PER_TURN);
      bulk.onRead = () => this.handlers.onBulkRead?.();
      this.connecting = false;
      const reconnected = this.everUp;
      if (reconnected) this.reconnects++;
      this.everUp = true;
      this.startPings();
      this.handlers.onUp(reconnected);
      // the round trip for the summary, on the fault channel (the stream has its own): not awaited,
      // the restore waits for this connection (3 round trips were 3 ms of downtime on a loaded machine)
      if (!reconnected) void this.measureRtt();
      this.onFirstUp?.();
      this.onFirstUp = null;
    } catch (e) {
      this.connecting = false;
      this.lastWhy = (e as Error).message;
      // a peer without our key will not get it by waiting: say so at once (first connection only)
      const refused = (e as { code?: string }).code === "FERRY_AUTH" && this.onFirstUp;
      if (refused || performance.now() - this.downSince >= this.retryForMs) {
        const why = refused ? this.lastWhy : `the page server at ${formatEndpoint(this.endpoint)} is unreachable (${this.lastWhy})`;
        if (this.onFirstUp) {
          this.onFirstUp(new Error(why));
          this.onFirstUp = null;
        } else this.handlers.onGiveUp(why);
        return;
      }
      this.retryTimer = setTimeout(() => this.attempt(), RETRY_EVERY_MS);
    }
  }

  /** One channel: connect, HELLO, wait for HELLO_OK (or one opened early, its HELLO said). */
  private async open(role: Hello["role"]): Promise<FrameChannel> {
    const early = await this.early?.take(role);
    let ready = false;
    let settle: { resolve: (ch: FrameChannel) => void; reject: (e: Error) => void } | null = null;
    const answered = new Promise<FrameChannel>((resolve, reject) => (settle = { resolve, reject }));
    let timer: NodeJS.Timeout | undefined;
    const onFrame = (f: Frame, ch: FrameChannel) => {
      if (!ready) {
        if (f.cmd !== CMD.HELLO_OK) return ch.close("expected HELLO_OK");
        ready = true;
        clearTimeout(timer);
        return settle!.resolve(ch);
      }
      this.onFrame(f, role);
    };
    const onClose = (ch: FrameChannel, why: string) => {
      clearTimeout(timer);
      if (ready) this.lost(ch, why);
      else if (ch.bytesIn) settle!.reject(new Error(why));
      // hung up on our HELLO without a word: a secure page server refusing plain TCP, or one serving another process
      else settle!.reject(new FerryError("FERRY_AUTH", `the page server at ${formatEndpoint(this.endpoint)} hung up without answering (does it expect a key while this side has --insecure, or serve another process?)`));
    };
    const ch = early ? early.ch : await FrameChannel.open(
      (onread) => withTimeout(this.transport.connect(this.endpoint, onread), CONNECT_TIMEOUT_MS, "connection attempt timed out"),
      payloadLimit, MAX_PAYLOAD, onFrame, onClose,
    );
    timer = setTimeout(() => ch.close("no answer to HELLO"), HELLO_TIMEOUT_MS);
    if (early) early.attach((f) => onFrame(f, ch), (why) => onClose(ch, why));
    else sayHello(ch, role, this.pid, this.session, this.maxRate);
    return answered;
  }

  private onFrame(f: Frame, role: Hello["role"]): void {
    switch (f.cmd) {
      case CMD.PAGES:
        return this.handlers.onPages(f, role === "bulk");
      case CMD.PONG:
        if (f.id === this.pingId) {
          const rtt = performance.now() - this.pingSentAt;
          this.rttMs = this.rttMs ? Math.min(this.rttMs, rtt) : rtt;
          this.handlers.onPingRtt?.(rtt * 1000);
          this.onPong?.();
        }
        return;
      case CMD.BYE:
        return this.handlers.onBye();
    }
  }

  private onPong: (() => void) | null = null;

  /** A few PING/PONG round trips as the link starts (the smallest is kept, with the later pings'). */
  private async measureRtt(): Promise<void> {
    for (let i = 0; i < 3 && !this.closed; i++) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 500);
        timer.unref(); // never what keeps a finished daemon alive
        this.onPong = () => {
          clearTimeout(timer);
          resolve();
        };
        this.ping();
      });
    }
    this.onPong = null;
  }

  private ping(): void {
    this.pingSentAt = performance.now();
    this.fault?.send({ cmd: CMD.PING, flags: 0, nrPages: 0, vaddr: 0, id: ++this.pingId });
  }

  private startPings(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      const f = this.fault, b = this.bulk;
      if (!f || !b) return;
      const heard = Math.max(f.lastHeard, b.lastHeard);
      if (performance.now() - heard > SILENCE_MS) {
        f.close(`no word from the page server for ${SILENCE_MS / 1000} s`);
        return;
      }
      this.ping();
    }, PING_EVERY_MS);
    this.pingTimer.unref();
  }

  private lost(ch: FrameChannel, why: string): void {
    if (ch !== this.fault && ch !== this.bulk) return;
    const { fault, bulk } = this;
    this.fault = null;
    this.bulk = null;
    fault?.close(why);
    bulk?.close(why);
    if (this.closed) return;
    this.downSince = performance.now();
    this.handlers.onDown(why);
    this.attempt();
  }
}

/** `p`, or a rejection after `ms`; a socket that connects too late is destroyed. */
function withTimeout<T extends { destroy(): void }>(p: Promise<T>, ms: number, why: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new Error(why));
    }, ms);
    p.then((v) => {
      clearTimeout(timer);
      if (late) v.destroy();
      else resolve(v);
    }, (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}
