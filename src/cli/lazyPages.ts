import { Command, Option } from "commander";
import { FerryError } from "../errors.js";
import { parseEndpoint } from "../net/endpoint.js";
import { lazyFailure, runLazyDaemon } from "../lazy/destination.js";
import { ProgressLine } from "../lazy/stats.js";
import { signalStatusFd, parseIntArg, parseRate, parseSeconds, imagesDir } from "./common.js";
import { addSecurityOptions, transportOf } from "./security.js";

/** The page server endpoint from --page-server ADDR:PORT or CRIU's --address/--port. */
export function pageServerOf(o: { pageServer?: string | boolean; address?: string; port?: string }): string | undefined {
  if (typeof o.pageServer === "string") return o.pageServer;
  if (o.port) return `${o.address ?? "127.0.0.1"}:${o.port}`;
  return undefined;
}

export function registerLazyPages(program: Command): void {
  addSecurityOptions(program
    .command("lazy-pages"))
    .description("destination daemon of a lazy migration: fills a restored process's memory from the page server")
    .option("-D, --images <dir>", "image directory (the one `ferry restore --lazy` uses)")
    .addOption(new Option("--images-dir <dir>").hideHelp())
    .option("--page-server [addr:port]", "where `ferry dump --lazy` serves the pages (alone: CRIU's --page-server --address A --port P)")
    .addOption(new Option("--address <addr>", "page server address (CRIU's spelling)").hideHelp())
    .addOption(new Option("--port <port>", "page server port (CRIU's spelling)").hideHelp())
    .option("--retry-for <seconds>", "if the page server or the link dies, retry this long before killing the process", parseSeconds, 10)
    .option("--max-rate <MB/s>", "cap the background stream (faults are never capped)", parseRate)
    .option("--status-fd <fd>", "write one byte to this fd when ready for `ferry restore --lazy`", parseIntArg)
    .option("--json", "print the summary as JSON (default when stdout is not a TTY)")
    .action(async (o) => {
      const dir = imagesDir(o);
      const ps = pageServerOf(o);
      if (!ps) throw new FerryError("FERRY_USAGE", "where is the page server? give --page-server ADDR:PORT");
      const progress = new ProgressLine();
      const log = progress.logger("ferry lazy-pages");
      const pageServer = parseEndpoint(ps, "--page-server");
      const summary = await runLazyDaemon({
        images: dir, pageServer, transport: transportOf(o, pageServer, log), retryForMs: o.retryFor * 1000, maxRate: o.maxRate, progress,
        log,
        onReady: () => {
          if (o.statusFd !== undefined) signalStatusFd(o.statusFd);
        },
      });
      if (o.json || !process.stdout.isTTY) process.stdout.write(JSON.stringify(summary) + "\n");
      else process.stderr.write(`ferry lazy-pages: ${summary.outcome}: ${summary.pages} pages, ${summary.faults} faults (p50 ${summary.faultLatencyUs.p50} µs, p99 ${summary.faultLatencyUs.p99} µs), all pages ${summary.allPagesMs} ms after the resume\n`);
      if (summary.outcome === "failed") throw lazyFailure(summary);
    });
}
