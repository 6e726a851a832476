import type net from "node:net";
import { FrameDecoder, encodeHeader, type Frame, type FrameHeader, type PayloadLimits } from "./framing.js";

/**
 * One connection speaking frames: decodes what arrives, encodes what is sent, and reports its
 * end once (with the reason). Handlers run synchronously for every frame, in order.
 */
export class FrameChannel {
  private closed = false;
  /** bytes of payload received so far */
  bytesIn = 0;
  bytesOut = 0;
  lastHeard = performance.now();

  /** Called after each read (a channel made by open()), once its frames have been handled. */
  onRead: (() => void) | null = null;
  private readonly decoder: FrameDecoder;
  private readBudget = 0;
  private readThisTurn = 0;
  private resumeScheduled = false;

  constructor(
    readonly socket: net.Socket,
    limits: PayloadLimits,
    maxPayload: number,
    private readonly onFrame: (f: Frame, ch: FrameChannel) => void,
    private readonly onClose: (ch: FrameChannel, why: string) => void,
    /** what the socket already reads into (FrameChannel.open); else its "data" events feed a decoder */
    reader?: FrameReader,
  ) {
    if (reader) this.decoder = reader.attach(this);
    else {
      this.decoder = new FrameDecoder(limits, (f) => onFrame(f, this), maxPayload);
      socket.on("data", (chunk: Buffer) => this.received(chunk));
    }
    socket.on("error", (e) => this.close(e.message));
    socket.on("close", () => this.close("connection closed"));
  }

  /**
   * Connect through `connect`, the socket reading straight into frames (its `onread`): no stream
   * chunk is allocated per read, and a payload that spans reads lands in its place instead of
   * being gathered by a copy.
   */
  static async open(
    connect: (onread: net.OnReadOpts) => Promise<net.Socket>,
    limits: PayloadLimits,
    maxPayload: number,
    onFrame: (f: Frame, ch: FrameChannel) => void,
    onClose: (ch: FrameChannel, why: string) => void,
  ): Promise<FrameChannel> {
    const reader = new FrameReader(limits, maxPayload);
    const socket = await connect(reader.onread);
    return new FrameChannel(socket, limits, maxPayload, onFrame, onClose, reader);
  }

  /** Bytes arrived: a chunk, or (onread) the count read into the decoder's target. */
  private received(chunk: Buffer | number): void {
    this.bytesIn += typeof chunk === "number" ? chunk : chunk.length;
    this.lastHeard = performance.now();
    try {
      if (typeof chunk === "number") this.decoder.wrote(chunk);
      else this.decoder.push(chunk);
    } catch (e) {
      this.close((e as Error).message);
    }
  }

  /**
   * onread: `n` bytes were read into the decoder's target. False stops reading once this turn of
   * the event loop has read its budget (limitReadsPerTurn); reading resumes on the next turn.
   */
  receivedInto(n: number): boolean {
    this.received(n);
    this.onRead?.();
    if (!this.readBudget || (this.readThisTurn += n) < this.readBudget) return true;
    if (!this.resumeScheduled) {
      this.resumeScheduled = true;
      setImmediate(() => {
        this.resumeScheduled = false;
        this.readThisTurn = 0;
        if (!this.closed) this.socket.resume();
      });
    }
    return false;
  }

  /**
   * Read at most about `bytes` per turn of the event loop (a channel made by open()): a stream
   * that always has data must not hold the loop, other connections and fds wait on it.
   */
  limitReadsPerTurn(bytes: number): void {
    this.readBudget = bytes;
  }

  /** The frame being read, when its payload has partly arrived (a channel made by open()): FrameDecoder.partial. */
  partialFrame(): ReturnType<FrameDecoder["partial"]> {
    return this.decoder.partial();
  }

  /** A decoded frame, for its handler. */
  deliver(f: Frame): void {
    this.onFrame(f, this);
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /**
   * Queue a frame; false when the socket's buffer is full (wait for "drain" before more bulk).
   * `written` runs once the payload has been handed to the kernel (its memory may be reused).
   */
  send(h: FrameHeader, payload?: Buffer, written?: () => void): boolean {
    if (this.closed) {
      written?.();
      return false;
    }
    const len = payload?.length ?? 0;
    this.bytesOut += 32 + len;
    if (!len) {
      const ok = this.socket.write(encodeHeader(h, 0));
      written?.();
      return ok;
    }
    this.socket.cork();
    this.socket.write(encodeHeader(h, len));
    const ok = this.socket.write(payload!, written && (() => written()));
    this.socket.uncork();
    return ok;
  }

  /**
   * Queue a frame whose header (encodeHeader) is already in its first 32 bytes: one buffer, one
   * write (a corked header and payload cost TLS a copy of both into one buffer).
   */
  sendEncoded(frame: Buffer, written?: () => void): boolean {
    if (this.closed) {
      written?.();
      return false;
    }
    this.bytesOut += frame.length;
    return this.socket.write(frame, written && (() => written()));
  }

  get needsDrain(): boolean {
    return this.socket.writableNeedDrain;
  }

  close(why = "closed"): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.onClose(this, why);
  }

  /** Close after what is queued has been written. */
  end(): void {
    if (this.closed) return;
    this.socket.end();
  }
}

/**
 * A socket's `onread` (a connect option, so made before the socket) feeding a FrameDecoder for
 * the channel that will own the socket. A peer that speaks before the channel exists is read
 * all the same; its frames wait for the channel.
 */
class FrameReader {
  private readonly decoder: FrameDecoder;
  private ch: FrameChannel | null = null;
  private readonly early: Frame[] = [];
  private refused: string | null = null;
  readonly onread: net.OnReadOpts = {
    buffer: () => this.decoder.readTarget(),
    callback: (n) => {
      if (this.ch) return this.ch.receivedInto(n);
      if (this.refused === null) {
        try {
          this.decoder.wrote(n);
        } catch (e) {
          this.refused = (e as Error).message; // the channel closes with it once it exists
        }
      }
      return true;
    },
  };

  constructor(limits: PayloadLimits, maxPayload: number) {
    this.decoder = new FrameDecoder(limits, (f) => {
      if (this.ch) this.ch.deliver(f);
      else this.early.push({ ...f, payload: Buffer.from(f.payload) });
    }, maxPayload);
  }

  attach(ch: FrameChannel): FrameDecoder {
    this.ch = ch;
    const { refused } = this;
    queueMicrotask(() => {
      for (const f of this.early.splice(0)) ch.deliver(f);
      if (refused !== null) ch.close(refused);
    });
    return this.decoder;
  }
}
