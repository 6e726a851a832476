import os from "node:os";
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import { FerryError } from "../errors.js";

/*
 * A second thread for the page stream, on the second CPU: on dump it writes the batches to the
 * page file while ferry reads the next ones from the process; on restore it verifies each window's
 * checksums while ferry copies the window into the process. The engine stays synchronous: jobs go
 * out with postMessage, completion comes back through a shared counter (Atomics.wait), failures
 * through a port read with receiveMessageOnPort.
 */

/** Verify the CRCs of runs mapped in ferry's memory (addresses are valid in every thread). */
export interface VerifyJob {
  kind: "verify";
  file: string;
  runs: { at: bigint; len: number; crc32: number; offset: number; vaddr: number }[];
}
/** Write `len` bytes of a shared buffer at `start` to `fd` at `position`. */
export interface WriteJob {
  kind: "write";
  file: string;
  fd: number;
  data: SharedArrayBuffer;
  start: number;
  len: number;
  position: number;
}
export type PageJob = VerifyJob | WriteJob;

/** What the helper sends back when a job fails: the FerryError to throw in the engine. */
export interface PageJobFault {
  job: number;
  code: string;
  message: string;
}

/** Below this many bytes of pages to move, no helper: a thread takes ~30 ms to start. */
const HELPER_MIN_BYTES = 64 << 20;

/** With no progress for this long the helper is taken for dead. */
const STALL_MS = 30_000;

export class PageHelper {
  private posted = 0;
  private fault: PageJobFault | null = null;

  /** [0]: jobs done, [1]: 1 once the thread runs (Node takes tens of ms to start one) */
  private constructor(private worker: Worker, private done: Int32Array, private faults: MessagePort) {}

  /**
   * A helper thread, or null where it cannot help: when ferry may run on one CPU only (pinned with
   * taskset, or a one-CPU machine), a second thread would only take turns with the first.
   */
  static start(): PageHelper | null {
    if (os.availableParallelism() < 2) return null;
    const done = new Int32Array(new SharedArrayBuffer(8));
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(new URL("./pageHelperThread.js", import.meta.url), {
      workerData: { done, faults: port2 }, transferList: [port2],
    });
    worker.unref();
    return new PageHelper(worker, done, port1);
  }

  /** A helper for a dump or restore of `bytes` of pages: null when they are too few to pay for it (or see start). */
  static forBytes(bytes: number): PageHelper | null {
    return bytes >= HELPER_MIN_BYTES ? PageHelper.start() : null;
  }

  /**
   * Is the thread up? Until it is, the engine does the work itself rather than wait for it: a
   * small dump or restore is over before the thread would have helped.
   */
  get ready(): boolean {
    return Atomics.load(this.done, 1) === 1;
  }

  /** Queue a job; returns its number, for waitFor. */
  post(job: PageJob): number {
    this.worker.postMessage(job);
    return ++this.posted;
  }

  /** Wait until job `n` (and every job before it) is done; throws the first job's failure. */
  waitFor(n = this.posted): void {
    let last = Atomics.load(this.done, 0), since = performance.now();
    while (last < n) {
      Atomics.wait(this.done, 0, last, 1000);
      const now = Atomics.load(this.done, 0);
      if (now !== last) [last, since] = [now, performance.now()];
      else if (performance.now() - since > STALL_MS) throw new FerryError("FERRY_HELPER", `ferry's page helper thread made no progress for ${STALL_MS / 1000} s`);
    }
    for (let m = receiveMessageOnPort(this.faults); m && !this.fault; m = receiveMessageOnPort(this.faults)) this.fault = m.message as PageJobFault;
    if (this.fault && this.fault.job <= n) throw new FerryError(this.fault.code, this.fault.message);
  }

  /** Stop the thread (whatever it was doing: call waitFor first to know it finished). */
  close(): void {
    this.faults.close();
    void this.worker.terminate();
  }
}
