import type net from "node:net";
import { FerryError } from "../errors.js";
import { FrameChannel } from "../net/channel.js";
import type { Frame } from "../net/framing.js";
import { CONTROL_SILENCE_MS, MAX_PAYLOAD, MCMD, controlLimit, json, parseMessage } from "./protocol.js";
import { FRAME_COMPRESSED, decodePayload, type FrameCompressor } from "./compression.js";

const PING_EVERY_MS = 1000;

/**
 * The control connection as a queue of frames: `next()` waits for the next one (payloads are
 * copied: the decoder reuses its memory), `send()` writes one and waits when the socket's
 * buffer is full, so large transfers go at the link's pace without piling up in memory.
 * Both sides PING every second; after `silenceMs` without a byte from the other side the
 * connection is closed (a cut link would otherwise leave both waiting for TCP's own timeout,
 * many minutes). A late timer means our own event loop was busy (a synchronous dump or
 * restore): the silence is judged on the next tick, once what arrived meanwhile has been read.
 */
export class Control {
  private readonly ch: FrameChannel;
  private readonly queue: Frame[] = [];
  private waiter: ((f: Frame | Error) => void) | null = null;
  private closedWhy: string | null = null;
  private failure: Error | null = null;
  /** frames that need no answer are handed here instead of the queue (precopy pages) */
  onUnasked: ((f: Frame) => boolean) | null = null;
  /** compresses page data sent with sendData() (set once both sides agreed on a codec) */
  compressor: FrameCompressor | null = null;

  private readonly pinger: NodeJS.Timeout;

  constructor(readonly socket: net.Socket, silenceMs = CONTROL_SILENCE_MS) {
    let lastTick = performance.now();
    this.pinger = setInterval(() => {
      const now = performance.now();
      const late = now - lastTick > 2 * PING_EVERY_MS;
      lastTick = now;
      if (!late && now - this.ch.lastHeard > silenceMs) {
        this.ch.close(`no word from the other side for ${Math.round(silenceMs / 1000)} s: the link or the other side is gone`);
        return;
      }
      this.ch.send({ cmd: MCMD.PING, flags: 0, nrPages: 0, vaddr: 0, id: 0 });
    }, PING_EVERY_MS);
    this.pinger.unref();
    this.ch = new FrameChannel(socket, controlLimit, MAX_PAYLOAD, (f) => {
      if (f.cmd === MCMD.PING) return;
      let frame: Frame;
      try {
        const payload = f.flags & FRAME_COMPRESSED ? decodePayload(f.payload, controlLimit(f.cmd) ?? 0) : Buffer.from(f.payload);
        frame = { ...f, flags: f.flags & ~FRAME_COMPRESSED, payload };
        if (this.onUnasked?.(frame)) return;
      } catch (e) {
        this.failure = e as Error; // refused: the connection ends with this error
        throw e;
      }
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w(frame);
      } else this.queue.push(frame);
    }, (_c, why) => {
      clearInterval(this.pinger);
      this.closedWhy = why;
      const w = this.waiter;
      this.waiter = null;
      w?.(this.ended());
    });
  }

  /** Why the connection is over, as an error. */
  private ended(): Error {
    return this.failure ?? new FerryError("FERRY_PEER_GONE", `the control connection ended (${this.closedWhy ?? "closed"})`);
  }

  get bytesOut(): number {
    return this.ch.bytesOut;
  }

  next(timeoutMs = 0): Promise<Frame> {
    const f = this.queue.shift();
    if (f) return Promise.resolve(f);
    if (this.closedWhy) return Promise.reject(this.ended());
    return new Promise((resolve, reject) => {
      const timer = timeoutMs ? setTimeout(() => {
        this.waiter = null;
        reject(new FerryError("FERRY_TIMEOUT", `no answer from the other side within ${timeoutMs / 1000} s`));
      }, timeoutMs) : null;
      this.waiter = (x) => {
        if (timer) clearTimeout(timer);
        if (x instanceof Error) reject(x);
        else resolve(x);
      };
    });
  }

  /** The next frame, which must be `cmd` (an ERROR frame from the peer becomes a FerryError). */
  async expect(cmd: number, timeoutMs = 0): Promise<Frame> {
    const f = await this.next(timeoutMs);
    if (f.cmd === MCMD.ERROR) throw new FerryError("FERRY_AGENT", parseMessage(f.payload, "message"));
    if (f.cmd === MCMD.ABORT) throw new FerryError("FERRY_ABORTED", `the source gave up: ${parseMessage(f.payload, "reason")}`);
    if (f.cmd !== cmd) throw new FerryError("FERRY_PROTOCOL", `expected command ${cmd}, got ${f.cmd}`);
    return f;
  }

  async send(cmd: number, payload?: Buffer, h: { vaddr?: number; nrPages?: number; flags?: number } = {}): Promise<void> {
    this.ch.send({ cmd, flags: h.flags ?? 0, nrPages: h.nrPages ?? 0, vaddr: h.vaddr ?? 0, id: 0 }, payload);
    if (!this.ch.needsDrain) return;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        this.socket.off("drain", done);
        this.socket.off("close", done);
        if (this.closedWhy || !this.ch.isOpen) reject(this.ended());
        else resolve();
      };
      this.socket.once("drain", done);
      this.socket.once("close", done);
    });
  }

  /**
   * A frame of page data (PAGES, DATA): compressed when the compressor says it pays. `dataStart`
   * is where the pages begin in the payload (after a zero bitmap). Resolves to the bytes put on
   * the connection.
   */
  async sendData(cmd: number, payload: Buffer, h: { vaddr?: number; nrPages?: number } = {}, dataStart = 0): Promise<number> {
    const c = this.compressor;
    if (!c) {
      await this.send(cmd, payload, h);
      return payload.length;
    }
    const e = c.encode(payload, dataStart);
    const t0 = performance.now();
    await this.send(cmd, e.payload, { ...h, flags: e.flags });
    c.sent(performance.now() - t0);
    return e.payload.length;
  }

  sendJson(cmd: number, o: unknown): Promise<void> {
    return this.send(cmd, json(o));
  }

  get isOpen(): boolean {
    return this.ch.isOpen;
  }

  close(): void {
    clearInterval(this.pinger);
    this.ch.close("done");
  }
}
