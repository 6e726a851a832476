import { dump, type DumpResult } from "../dump/index.js";
import { rehearse } from "../rehearsal.js";
import type { Endpoint } from "../net/endpoint.js";
import type { Transport } from "../net/transport.js";
import { FrozenProcess } from "./frozen.js";
import { loadLazyImages } from "./images.js";
import { PageServer, type SourceStats } from "./pageServer.js";

export interface LazySourceOptions {
  pid: number;
  images: string;
  listen: Endpoint;
  /** how long a lost destination may take to come back (default 30 s) */
  retryForMs?: number;
  shellJob?: boolean;
  transport?: Transport;
  /** the images are written and the page server listens */
  onReady?: () => void;
  log?: (line: string) => void;
  onProgress?: (s: SourceStats) => void;
  signal?: AbortSignal;
}

export interface LazySourceResult {
  pid: number;
  /** true: the destination holds every page and the source is gone */
  delivered: boolean;
  /** why not (the source is then left frozen: `ferry resume PID` runs it again here) */
  reason?: string;
  dump: DumpResult;
  /** images written, page server listening: from the start of the dump (ms) */
  readyMs: number;
  /** until the end of the service (ms) */
  durationMs: number;
  stats: SourceStats;
}

/**
 * The source of a lazy migration, whole: dump everything but private anonymous memory, keep
 * the process frozen, serve its pages until the destination holds them all, then kill it.
 */
export async function serveLazy(opts: LazySourceOptions): Promise<LazySourceResult> {
  await rehearse("dump", true, opts.log); // while the process still runs
  const t0 = performance.now();
  const d = dump({ pid: opts.pid, images: opts.images, shellJob: opts.shellJob, lazy: true });
  const process = await FrozenProcess.hold(opts.pid);
  let server: PageServer;
  try {
    const { index } = loadLazyImages(opts.images);
    server = new PageServer({
      process, index, listen: opts.listen, transport: opts.transport, retryForMs: opts.retryForMs ?? 30_000,
      log: opts.log, onProgress: opts.onProgress,
    });
    await server.start();
  } catch (e) {
    process.release(); // stays frozen: the user decides (ferry resume)
    throw e;
  }
  const readyMs = performance.now() - t0;
  opts.onReady?.();
  const onAbort = () => server.abandon("interrupted");
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const o = await server.outcome;
    return {
      pid: opts.pid, delivered: o.delivered, reason: o.delivered ? undefined : o.reason, dump: d, readyMs,
      durationMs: performance.now() - t0, stats: o.stats,
    };
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
  }
}
