import type { Command } from "commander";
import { addSecurityOptions, transportOf } from "./security.js";
import { parseEndpoint } from "../net/endpoint.js";
import { runAgent } from "../migrate/agent.js";
import { abortOnSignals, signalStatusFd, parseIntArg, parseRate, parseSeconds, phaseWriter } from "./common.js";

export function registerAgent(program: Command): void {
  addSecurityOptions(program
    .command("agent"))
    .description("destination of `ferry migrate`: receive processes and run them here")
    .requiredOption("--listen <addr:port>", "where to listen")
    .option("--keep-images <dir>", "keep the received images under this directory")
    .option("--once", "serve one migration, then exit")
    .option("--action-script <file>", "run this at post-restore (CRTOOLS_SCRIPT_ACTION, as CRIU does)")
    .option("--status-fd <fd>", "write one byte to this fd when listening", parseIntArg)
    .option("--phase-fd <fd>", "write each step of a migration (receiving, restore, running, lazy, done, failed) and its PID as a line to this fd", parseIntArg)
    .option("--retry-for <seconds>", "lazy/hybrid: if the page server or the link dies, retry this long before killing the process", parseSeconds, 10)
    .option("--max-rate <MB/s>", "lazy/hybrid: cap the background stream (faults are never capped)", parseRate)
    .action(async (o) => {
      const listen = parseEndpoint(o.listen, "--listen");
      const log = (l: string) => process.stderr.write(`ferry agent: ${l}\n`);
      const transport = transportOf(o, listen, log);
      const phase = phaseWriter(o.phaseFd);
      await abortOnSignals((signal) => runAgent({
        listen, transport, keepImages: o.keepImages, actionScript: o.actionScript, once: o.once, signal,
        retryForMs: o.retryFor * 1000, maxRate: o.maxRate, onPhase: (p, pid) => phase(`${p} ${pid}`),
        log,
        onReady: () => {
          if (o.statusFd !== undefined) signalStatusFd(o.statusFd);
        },
        onFailed: () => {
          process.exitCode = 1;
        },
        onMigrated: (r) => {
          if (!process.stdout.isTTY) process.stdout.write(JSON.stringify(r) + "\n");
          else process.stderr.write(`ferry agent: process ${r.pid} arrived (${r.mode}) and runs here\n`);
        },
      }));
    });
}
