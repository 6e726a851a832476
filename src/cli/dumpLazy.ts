import { FerryError } from "../errors.js";
import { parseEndpoint } from "../net/endpoint.js";
import { serveLazy } from "../lazy/source.js";
import { ProgressLine, mib } from "../lazy/stats.js";
import { PAGE_SIZE } from "../kernel/sys.js";
import { abortOnSignals, signalStatusFd, imagesDir } from "./common.js";
import { transportOf, type SecurityFlags } from "./security.js";

export interface DumpLazyFlags extends SecurityFlags {
  images?: string;
  imagesDir?: string;
  listen?: string;
  address?: string;
  port?: string;
  /** seconds (the option's default: 30) */
  retryFor: number;
  shellJob?: boolean;
  statusFd?: number;
  json?: boolean;
}

/** `ferry dump PID -D DIR --lazy --listen ADDR:PORT`: the source of a lazy migration. */
export async function dumpLazy(pid: number, o: DumpLazyFlags): Promise<void> {
  const listenText = o.listen ?? (o.port ? `${o.address ?? "0.0.0.0"}:${o.port}` : undefined);
  if (!listenText) throw new FerryError("FERRY_USAGE", "a lazy dump serves pages: give --listen ADDR:PORT");
  const listen = parseEndpoint(listenText, "--listen");
  const progress = new ProgressLine();
  const log = progress.logger("ferry dump");
  const transport = transportOf(o, listen, log); // before anything is frozen: a missing key stops here
  const r = await abortOnSignals((signal) => serveLazy({
    pid, images: imagesDir(o), listen, transport, shellJob: o.shellJob, retryForMs: o.retryFor * 1000, log, signal,
    onReady: () => {
      if (o.statusFd !== undefined) signalStatusFd(o.statusFd);
    },
    onProgress: (s) => progress.update(() => `ferry dump: served ${mib(s.pagesSent * PAGE_SIZE)}/${mib(s.pagesTotal * PAGE_SIZE)} MiB, ${s.faultRequests} fault requests`),
  }));
  progress.clear();
  if (o.json) {
    process.stdout.write(JSON.stringify({
      pid: r.pid, delivered: r.delivered, reason: r.reason, frozenMs: r.dump.frozenMs, readyMs: r.readyMs,
      durationMs: r.durationMs, eagerPages: r.dump.pages, ...r.stats,
    }) + "\n");
  }
  if (!r.delivered) {
    throw new FerryError("FERRY_NOT_DELIVERED", `${r.reason}; process ${pid} is kept frozen here: \`ferry resume ${pid}\` runs it here again (only if the destination's copy is dead), \`kill -9 ${pid}\` drops it`);
  }
}
