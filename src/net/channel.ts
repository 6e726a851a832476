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

  constructor(
    readonly socket: net.Socket,
    limits: PayloadLimits,
    maxPayload: number,
    onFrame: (f: Frame, ch: FrameChannel) => void,
    private readonly onClose: (ch: FrameChannel, why: string) => void,
  ) {
    const decoder = new FrameDecoder(limits, (f) => onFrame(f, this), maxPayload);
    socket.on("data", (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      this.lastHeard = performance.now();
      try {
        decoder.push(chunk);
      } catch (e) {
        this.close((e as Error).message);
      }
    });
    socket.on("error", (e) => this.close(e.message));
    socket.on("close", () => this.close("connection closed"));
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
