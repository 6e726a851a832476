import fs from "node:fs";
import { parseEndpoint } from "../net/endpoint.js";
import { waitForExit, type Restored } from "../restore/index.js";
import { lazyFailure, restoreLazy, restoreLazyWithServer } from "../lazy/destination.js";
import { ProgressLine } from "../lazy/stats.js";
import type { LazySummary } from "../lazy/stats.js";
import { signalStatusFd, imagesDir } from "./common.js";
import { pageServerOf } from "./lazyPages.js";
import { transportOf, type SecurityFlags } from "./security.js";

export interface RestoreLazyFlags extends SecurityFlags {
  images?: string;
  imagesDir?: string;
  pageServer?: string | boolean;
  address?: string;
  port?: string;
  /** seconds (the option's default: 10) */
  retryFor: number;
  maxRate?: number;
  detach?: boolean;
  pidfile?: string;
  shellJob?: boolean;
  statusFd?: number;
  json?: boolean;
}

/**
 * `ferry restore --lazy`: hand the process to a running `ferry lazy-pages`, or with
 * --page-server be that daemon too (then the command lasts until every page arrived, and
 * without --detach until the process exits).
 */
export async function restoreLazyCli(o: RestoreLazyFlags): Promise<void> {
  const dir = imagesDir(o);
  const ps = pageServerOf(o);
  const announce = (r: Restored) => {
    if (o.pidfile) fs.writeFileSync(o.pidfile, `${r.pid}\n`);
    if (o.statusFd !== undefined) signalStatusFd(o.statusFd);
  };
  if (!ps) {
    const r = restoreLazy({ images: dir, shellJob: o.shellJob });
    announce(r);
    if (o.json) process.stdout.write(JSON.stringify(r) + "\n");
    if (!o.detach) process.exitCode = await waitForExit(r.pid);
    return;
  }
  const progress = new ProgressLine();
  const pageServer = parseEndpoint(ps, "--page-server");
  const log = progress.logger("ferry restore");
  const transport = transportOf(o, pageServer, log);
  const { restored, transfer } = await restoreLazyWithServer({
    images: dir, pageServer, transport, retryForMs: o.retryFor * 1000, maxRate: o.maxRate,
    shellJob: o.shellJob, progress,
    log,
  });
  announce(restored);
  const exit = o.detach ? null : waitForExit(restored.pid);
  const summary: LazySummary = await transfer;
  if (o.json) process.stdout.write(JSON.stringify({ ...restored, lazy: summary }) + "\n");
  if (summary.outcome === "failed") {
    await exit;
    throw lazyFailure(summary);
  }
  if (exit) process.exitCode = await exit;
}
