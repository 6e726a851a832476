import type net from "node:net";
import { FerryError } from "../errors.js";
import { FrameChannel } from "../net/channel.js";
import type { Frame } from "../net/framing.js";
import { MAX_PAYLOAD, MCMD, controlLimit, json, parse } from "./protocol.js";
import { FRAME_COMPRESSED, decodePayload, type FrameCompressor } from "./compression.js";

/**
 * The control connection as a queue of frames: `next()` waits for the next one (payloads are
 * copied: the decoder reuses its memory), `send()` writes one and waits when the socket's
 * buffer is full, so large transfers go at the link's pace without piling up in memory.
 */
export class Control {
  private readonly ch: FrameChannel;
  private readonly queue: Frame[] = [];
  private waiter: ((f: Frame | Error) => void) | null = null;
  private closedWhy: string | null = null;
  /** frames that need no answer are handed here instead of the queue (precopy pages) */
  onUnasked: ((f: Frame) => boolean) | null = null;
  /** compresses page data sent with sendData() (set once both sides agreed on a codec) */
  compressor: FrameCompressor | null = null;

  constructor(readonly socket: net.Socket) {
    this.ch = new FrameChannel(socket, controlLimit, MAX_PAYLOAD, (f) => {
      const payload = f.flags & FRAME_COMPRESSED ? decodePayload(f.payload, controlLimit(f.cmd) ?? 0) : Buffer.from(f.payload);
      const frame = { ...f, flags: f.flags & ~FRAME_COMPRESSED, payload };
      if (this.onUnasked?.(frame)) return;
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w(frame);
      } else this.queue.push(frame);
    }, (_c, why) => {
      this.closedWhy = why;
      const w = this.waiter;
      this.waiter = null;
      w?.(new FerryError("FERRY_PEER_GONE", `the other side closed the connection (${why})`));
    });
  }

  get bytesOut(): number {
    return this.ch.bytesOut;
  }

  next(timeoutMs = 0): Promise<Frame> {
    const f = this.queue.shift();
    if (f) return Promise.resolve(f);
    if (this.closedWhy) return Promise.reject(new FerryError("FERRY_PEER_GONE", `the other side closed the connection (${this.closedWhy})`));
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
    if (f.cmd === MCMD.ERROR) throw new FerryError("FERRY_AGENT", parse<{ message: string }>(f.payload).message);
    if (f.cmd === MCMD.ABORT) throw new FerryError("FERRY_ABORTED", `the source gave up: ${parse<{ reason: string }>(f.payload).reason}`);
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
        if (this.closedWhy || !this.ch.isOpen) reject(new FerryError("FERRY_PEER_GONE", `the other side closed the connection (${this.closedWhy ?? "closed"})`));
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

  close(): void {
    this.ch.close("done");
  }
}
