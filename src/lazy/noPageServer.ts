import { FerryError } from "../errors.js";
import type { PageRange } from "./protocol.js";

/**
 * The daemon's link when there is no page server: every page the process may miss is held at
 * the destination (a pre-copy migration sent them all before the switch-over). It is always
 * "up", asks nothing, and a page that would have to be fetched is an error that kills the
 * process (guard() in the daemon), never a wait and never zeros.
 */
export class NoPageServer {
  readonly up = true;
  readonly reconnects = 0;
  readonly rttMs = 0;

  constructor(private readonly onBye: () => void) {}

  connect(): Promise<void> {
    return Promise.resolve();
  }
  get(vaddr: number, nrPages: number): void {
    throw new FerryError("FERRY_PAGE_MISSING", `${nrPages} page(s) at 0x${vaddr.toString(16)} are neither held here nor zero, and there is no page server to ask (pre-copy sends every page before the switch-over)`);
  }
  ack(_id: number): void {}
  awaitingAnswer(_asking: boolean): void {}
  bulkFrameInProgress(): null {
    return null;
  }
  pending(_ranges: PageRange[]): void {}
  drop(_ranges: PageRange[]): void {}
  /** nobody to tell: the goodbye is at once (on the next turn, as a page server's would be) */
  done(): void {
    setImmediate(this.onBye);
  }
  abort(_reason: string): void {}
  close(_graceful?: boolean): void {}
}
