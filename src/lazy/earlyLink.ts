import { randomBytes } from "node:crypto";
import { FrameChannel } from "../net/channel.js";
import type { Frame } from "../net/framing.js";
import type { Endpoint } from "../net/endpoint.js";
import type { Transport } from "../net/transport.js";
import { CMD, MAX_PAYLOAD, PROTOCOL_VERSION, payloadLimit, type Hello } from "./protocol.js";

type Role = Hello["role"];

/** Say HELLO on a new channel to the page server. */
export function sayHello(ch: FrameChannel, role: Role, pid: number, session: string, maxRate: number): void {
  const hello: Hello = { version: PROTOCOL_VERSION, role, pid, session, maxRate };
  ch.send({ cmd: CMD.HELLO, flags: 0, nrPages: 0, vaddr: 0, id: 0 }, Buffer.from(JSON.stringify(hello)));
}

/** One channel opened early: what it hears before a link takes it is kept for the link. */
export class EarlyChannel {
  private heard: Frame[] = [];
  private closedWhy: string | null = null;
  private onFrame: ((f: Frame) => void) | null = null;
  private onClose: ((why: string) => void) | null = null;
  ch!: FrameChannel;

  /** Connect; the channel reads straight into frames (FrameChannel.open). */
  static async open(endpoint: Endpoint, transport: Transport): Promise<EarlyChannel> {
    const early = new EarlyChannel();
    early.ch = await FrameChannel.open((onread) => transport.connect(endpoint, onread), payloadLimit, MAX_PAYLOAD, (f) => {
      if (early.onFrame) early.onFrame(f);
      else early.heard.push({ ...f, payload: Buffer.from(f.payload) }); // the decoder reuses its memory
    }, (_c, why) => {
      if (early.onClose) early.onClose(why);
      else early.closedWhy ??= why;
    });
    return early;
  }

  /** The link's handlers from now on (what was heard before, first). */
  attach(onFrame: (f: Frame) => void, onClose: (why: string) => void): void {
    this.onFrame = onFrame;
    this.onClose = onClose;
    for (const f of this.heard.splice(0)) onFrame(f);
    if (this.closedWhy !== null) onClose(this.closedWhy);
  }
}

/**
 * The two connections of a page link opened while the source still runs (its pre-copy rounds,
 * its images), so that their TCP and TLS handshakes are not paid during the downtime. Each says
 * HELLO at once (a listener drops a peer silent for 5 s); the page server answers only when it
 * serves, once RESTORE is sent. The link takes them for its first attempt (with this session);
 * one that failed or closed meanwhile is opened again the ordinary way.
 */
export class EarlyChannels {
  readonly session = randomBytes(8).toString("hex");
  private readonly opened = new Map<Role, Promise<EarlyChannel | null>>();
  private taken = new Set<Role>();
  private closed = false;

  constructor(readonly endpoint: Endpoint, pid: number, transport: Transport, maxRate = 0) {
    for (const role of ["fault", "bulk"] as const) {
      this.opened.set(role, EarlyChannel.open(endpoint, transport).then((early) => {
        if (this.closed) {
          early.ch.close("not needed");
          return null;
        }
        sayHello(early.ch, role, pid, this.session, maxRate);
        return early;
      }, () => null));
    }
  }

  /** The open channel of `role`, once (null: none, open one the ordinary way). */
  async take(role: Role): Promise<EarlyChannel | null> {
    if (this.taken.has(role)) return null;
    this.taken.add(role);
    const early = await this.opened.get(role)!;
    return early?.ch.isOpen ? early : null;
  }

  /** Close what no link took. */
  close(): void {
    this.closed = true;
    for (const [role, p] of this.opened) {
      if (this.taken.has(role)) continue;
      this.taken.add(role);
      void p.then((early) => early?.ch.close("not needed"));
    }
  }
}
