import { FerryError } from "../errors.js";
import { restore, type RestoreStub, type Restored } from "../restore/index.js";
import type { Endpoint } from "../net/endpoint.js";
import type { Transport } from "../net/transport.js";
import { LazyPagesDaemon, type LocalPages } from "./daemon.js";
import type { UffdGuard } from "./guard.js";
import type { EarlyChannels } from "./earlyLink.js";
import { HandoffListener, handOffUffd } from "./handoff.js";
import { loadLazyImages } from "./images.js";
import type { LazySummary, ProgressLine } from "./stats.js";
import { Spans } from "../spans.js";
import { ImageDir } from "../images/store.js";

export interface LazyDaemonOptions {
  images: string;
  /** null: every page is held here (`local`), none is fetched (a pre-copy migration) */
  pageServer: Endpoint | null;
  /** how long a lost page server may take to come back before the process is killed (default 10 s) */
  retryForMs?: number;
  /** cap of the background stream, bytes/s */
  maxRate?: number;
  transport?: Transport;
  log?: (line: string) => void;
  progress?: ProgressLine;
  /** pages already here (hybrid migration): installed locally after the resume, never fetched */
  local?: LocalPages;
  /** the uffd guard, prepared ahead (see UffdGuard) */
  guard?: UffdGuard;
  /** the page server's connections, opened ahead (see EarlyChannels) */
  early?: EarlyChannels;
}

function daemonFor(opts: LazyDaemonOptions, images: string | ImageDir = opts.images): LazyPagesDaemon {
  return new LazyPagesDaemon({
    images: loadLazyImages(images), pageServer: opts.pageServer, transport: opts.transport,
    retryForMs: opts.retryForMs ?? 10_000, maxRate: opts.maxRate, log: opts.log ?? (() => {}), progress: opts.progress,
    local: opts.local, guard: opts.guard, early: opts.early,
  });
}

/**
 * `ferry lazy-pages`: connect to the page server, wait for `ferry restore --lazy` to hand over
 * the process (socket in the images directory), fill its memory, end when all has arrived.
 * `onReady` runs once the page server answered and the socket listens.
 */
export async function runLazyDaemon(opts: LazyDaemonOptions & { onReady?: () => void }): Promise<LazySummary> {
  const daemon = daemonFor(opts);
  await daemon.connect();
  const listener = HandoffListener.listen(opts.images, (t, info) => {
    daemon.adopt(t, info.resumedAtUs);
    setImmediate(() => listener.close()); // one process per daemon (once it has been answered)
  });
  const unwatch = stopOnSignals(daemon);
  try {
    opts.onReady?.();
    return await daemon.finished;
  } finally {
    listener.close();
    unwatch();
  }
}

/** `ferry restore --lazy` without --page-server: restore, handing the uffd to the running daemon. */
export function restoreLazy(opts: { images: string; shellJob?: boolean }): Restored {
  return restore({ images: opts.images, shellJob: opts.shellJob, lazy: (t) => handOffUffd(opts.images, t) });
}

/**
 * `ferry restore --lazy --page-server ADDR:PORT`: daemon and restore in one process. Resolves
 * with the restored process once it runs; `transfer` with the summary when all pages arrived.
 * Without a page server (pre-copy) every lazy page is in `local`: installed after the resume.
 */
export async function restoreLazyWithServer(opts: LazyDaemonOptions & {
  shellJob?: boolean; beforeRestore?: () => void; spans?: Spans; stub?: RestoreStub;
  /**
   * Reach the page server while the restore runs rather than before it (a migration's agent,
   * whose source is known to be there): its round trips leave the downtime.
   */
  connectDuringRestore?: boolean;
}): Promise<{ restored: Restored; transfer: Promise<LazySummary> }> {
  const sp = opts.spans ?? new Spans();
  const images = ImageDir.shared(opts.images); // decoded once, for the daemon and the restore
  const daemon = sp.time("lazy-pages daemon", () => daemonFor(opts, images));
  const connecting = daemon.connect();
  if (opts.connectDuringRestore && opts.pageServer) {
    // Its answers wait in the socket while the restore runs; a fault before it is up waits for it
    // (PageLink asks again once up), and a failure kills what was restored, never leaves it on zeros.
    connecting.catch((e: Error) => daemon.emergency(e.message));
  } else if (opts.pageServer) await sp.timeAsync("page server connection", () => connecting);
  else await connecting;
  opts.beforeRestore?.();
  let restored: Restored;
  try {
    restored = restore({ images, shellJob: opts.shellJob, spans: sp, stub: opts.stub, lazy: (t) => daemon.adopt(t) });
  } catch (e) {
    daemon.emergency(`restore failed: ${(e as Error).message}`);
    throw e;
  }
  const transfer = daemon.finished.finally(stopOnSignals(daemon));
  return { restored, transfer };
}

/** SIGINT or SIGTERM stops the daemon (its process killed, never left on missing memory) until the returned function is called. */
function stopOnSignals(daemon: LazyPagesDaemon): () => void {
  const stop = (sig: NodeJS.Signals) => daemon.emergency(`interrupted by ${sig}`);
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  return () => {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  };
}

export function lazyFailure(s: LazySummary): FerryError {
  return new FerryError("FERRY_LAZY_FAILED", s.error ?? "the lazy transfer failed");
}
