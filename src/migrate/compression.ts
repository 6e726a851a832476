import zlib from "node:zlib";
import { FerryError } from "../errors.js";
import { PAGE_SIZE } from "../kernel/sys.js";

/**
 * Page data on the control connection (pre-copy PAGES frames and image DATA frames) may travel
 * compressed, frame by frame: the frame's flag FRAME_COMPRESSED says its payload is the codec's
 * output. The source offers the codec in HELLO, the agent names it in HELLO_OK if it takes it;
 * otherwise (an older agent) nothing is compressed.
 *
 * `on` compresses every frame that gets smaller. `auto` compresses only when it pays on this
 * link: it measures, over windows of a few frames of the stream itself, how long the sender is
 * busy per byte, whether it waited for the link (the socket's buffer full) and so how fast the
 * link carries bytes, and, on a sample of each frame's pages, the codec's ratio and speed both
 * ways. A compressed byte costs the sender the codec on top of its other work, the link only its
 * share of the output, and the agent the decoding; it pays when that is clearly quicker than
 * the link's time for the raw byte. A link faster than the sender never pays.
 */
export type CompressSetting = "auto" | "on" | "off";
export const COMPRESS_SETTINGS: readonly CompressSetting[] = ["auto", "on", "off"];
/** brotli at quality 0: the fastest zlib-family codec here, and quick to give up on random data */
export const CODEC = "brotli-q0";
/** frame flag: the payload is compressed */
export const FRAME_COMPRESSED = 1;

const ENCODE_OPTIONS: zlib.BrotliOptions = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 0 } };
/**
 * Pages of a frame compressed (and decoded) as a sample while `auto` sends raw: every 4th frame
 * of the first 64, then every 32nd (about 2% of the data once the estimates have settled).
 */
const SAMPLE_PAGES = 64;
const sampleEvery = (frames: number) => (frames < 64 ? 4 : 32);
/** frames per measuring window of `auto` */
const WINDOW_FRAMES = 4;
/** compressed must be this much quicker than raw */
const MARGIN = 0.9;

export interface CompressionSummary {
  setting: CompressSetting;
  /** the codec both sides agreed on; null when off or the agent has none */
  codec: string | null;
  /** whether any frame went compressed */
  used: boolean;
  framesCompressed: number;
  framesSent: number;
  /** payload bytes of all frames before and after compression */
  rawBytes: number;
  wireBytes: number;
  /** wire ÷ raw bytes of the compressed frames (null when none was) */
  ratio: number | null;
  /** what `auto` measured last: link (bytes/s, null while the link never held the sender back), codec speeds, sample ratio */
  measured: { linkBps: number | null; encodeBps: number | null; decodeBps: number | null; sampleRatio: number | null } | null;
  /** only the control connection: pages of the lazy page server (lazy, hybrid after the switch-over) are not compressed */
  scope: "pre-copy rounds and images";
}

const round = (x: number | null) => (x === null ? null : Math.round(x));

/** The decoding side (the agent): a flagged payload back to what it was, never beyond `limit` bytes. */
export function decodePayload(payload: Buffer, limit: number): Buffer {
  try {
    return zlib.brotliDecompressSync(payload, { maxOutputLength: limit });
  } catch (e) {
    throw new FerryError("FERRY_PROTOCOL", `a compressed frame does not decode within ${limit} bytes (${(e as Error).message})`);
  }
}

/** A running estimate: the newest measurement counts for half. */
const blend = (old: number | null, now: number) => (old === null ? now : (old + now) / 2);

/**
 * The codec's ratio and speed over what it saw lately, weighted by bytes (a small metadata frame
 * does not outweigh megabytes of pages); older bytes fade once 8 MiB were seen.
 */
class CodecMeter {
  private input = 0;
  private output = 0;
  private encodeMs = 0;
  private decoded = 0;
  private decodeMs = 0;

  add(input: number, output: number, encodeMs: number, decodeMs?: number): void {
    if (this.input + input > 8 << 20) {
      this.input /= 2;
      this.output /= 2;
      this.encodeMs /= 2;
      this.decoded /= 2;
      this.decodeMs /= 2;
    }
    this.input += input;
    this.output += output;
    this.encodeMs += encodeMs;
    if (decodeMs !== undefined) {
      this.decoded += input;
      this.decodeMs += decodeMs;
    }
  }

  get ratio(): number | null {
    return this.input ? this.output / this.input : null;
  }

  /** bytes/s; a small sample pays the codec's set-up, so this errs on the slow side */
  get encodeBps(): number | null {
    return this.encodeMs > 0 ? (this.input * 1000) / this.encodeMs : null;
  }

  get decodeBps(): number | null {
    return this.decodeMs > 0 ? (this.decoded * 1000) / this.decodeMs : null;
  }
}

/**
 * The encoding side (the source). `encode` gives the payload and flags of one frame; `sent`
 * tells it how long the frame's send waited for the link. `dataStart` is where page data begins
 * (after a PAGES frame's zero bitmap): the sample is taken from there.
 */
export class FrameCompressor {
  private framesCompressed = 0;
  private framesSent = 0;
  private rawBytes = 0;
  private wireBytes = 0;
  private compressedRaw = 0;
  private compressedWire = 0;
  // auto's estimates and the current window
  private compressNow = false;
  private linkBps: number | null = null;
  private readonly codecMeter = new CodecMeter();
  private win = { frames: 0, start: 0, raw: 0, wire: 0, codecMs: 0, blockedMs: 0 };

  constructor(readonly setting: CompressSetting, readonly codec: string | null) {
    // the first call loads and sets up the codec (milliseconds): not a measurement
    if (this.enabled) zlib.brotliDecompressSync(zlib.brotliCompressSync(Buffer.alloc(PAGE_SIZE), ENCODE_OPTIONS));
  }

  /** Compression is possible at all (the agent took the codec and it is not off). */
  get enabled(): boolean {
    return this.setting !== "off" && this.codec === CODEC;
  }

  encode(payload: Buffer, dataStart = 0): { payload: Buffer; flags: number } {
    if (!this.win.frames && !this.win.start) this.win.start = performance.now();
    let out = payload, flags = 0;
    if (this.enabled) {
      if (this.setting === "on" || this.compressNow) {
        const t0 = performance.now();
        const z = zlib.brotliCompressSync(payload, ENCODE_OPTIONS);
        const ms = performance.now() - t0;
        this.win.codecMs += ms;
        this.codecMeter.add(payload.length, z.length, ms);
        if (z.length < payload.length) {
          out = z;
          flags = FRAME_COMPRESSED;
          this.framesCompressed++;
          this.compressedRaw += payload.length;
          this.compressedWire += z.length;
        }
      } else this.sample(payload, dataStart);
    }
    this.framesSent++;
    this.rawBytes += payload.length;
    this.wireBytes += out.length;
    this.win.raw += payload.length;
    this.win.wire += out.length;
    return { payload: out, flags };
  }

  /** After the frame went to the socket: how long its send waited for the buffer to drain. */
  sent(blockedMs: number): void {
    this.win.blockedMs += blockedMs;
    if (++this.win.frames < WINDOW_FRAMES) return;
    if (this.setting === "auto" && this.enabled) this.decide(performance.now() - this.win.start);
    this.win = { frames: 0, start: performance.now(), raw: 0, wire: 0, codecMs: 0, blockedMs: 0 };
  }

  /** The codec's ratio and speeds, both ways, on a few pages of a frame sent raw. */
  private sample(payload: Buffer, dataStart: number): void {
    if (this.framesSent % sampleEvery(this.framesSent) !== 0) return;
    const piece = payload.subarray(dataStart, dataStart + SAMPLE_PAGES * PAGE_SIZE);
    if (piece.length < PAGE_SIZE) return;
    const t0 = performance.now();
    const z = zlib.brotliCompressSync(piece, ENCODE_OPTIONS);
    const t1 = performance.now();
    zlib.brotliDecompressSync(z);
    const t2 = performance.now();
    this.win.codecMs += t2 - t0;
    this.codecMeter.add(piece.length, z.length, t1 - t0, t2 - t1);
  }

  /**
   * One window's verdict. A window in which sends waited for the link (more than a tenth of its
   * time) shows the link's rate: the bytes it carried over the window. Time per raw byte, raw:
   * the slower of the sender's own work and the link; compressed: the slower of the sender's
   * work plus encoding, the link's share of the output, and the agent's decoding.
   */
  private decide(elapsedMs: number): void {
    const w = this.win;
    if (elapsedMs <= 0 || !w.raw) return;
    const secs = elapsedMs / 1000;
    if (w.blockedMs > elapsedMs * 0.1) this.linkBps = blend(this.linkBps, w.wire / secs);
    else if (this.linkBps !== null) this.linkBps = Math.max(this.linkBps, w.wire / secs); // it carried at least this much
    const { ratio, encodeBps, decodeBps } = this.codecMeter;
    if (this.linkBps === null || ratio === null || encodeBps === null) {
      this.compressNow = false; // the link never held the sender back (or nothing measured yet): it cannot pay
      return;
    }
    const busyPerByte = Math.max(0, secs - (w.blockedMs + w.codecMs) / 1000) / w.raw;
    const raw = Math.max(busyPerByte, 1 / this.linkBps);
    const compressed = Math.max(busyPerByte + 1 / encodeBps, ratio / this.linkBps, 1 / (decodeBps ?? encodeBps));
    this.compressNow = compressed < raw * MARGIN;
  }

  summary(): CompressionSummary {
    return {
      setting: this.setting,
      codec: this.enabled ? this.codec : null,
      used: this.framesCompressed > 0,
      framesCompressed: this.framesCompressed,
      framesSent: this.framesSent,
      rawBytes: this.rawBytes,
      wireBytes: this.wireBytes,
      ratio: this.compressedRaw ? Number((this.compressedWire / this.compressedRaw).toFixed(4)) : null,
      measured: this.setting === "auto" && this.enabled
        ? { linkBps: round(this.linkBps), encodeBps: round(this.codecMeter.encodeBps), decodeBps: round(this.codecMeter.decodeBps), sampleRatio: this.codecMeter.ratio }
        : null,
      scope: "pre-copy rounds and images",
    };
  }
}
