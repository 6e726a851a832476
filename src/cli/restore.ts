import fs from "node:fs";
import { Command, Option } from "commander";
import { restore, waitForExit } from "../restore/index.js";
import { signalStatusFd, parseIntArg, parseRate, parseSeconds, imagesDir } from "./common.js";
import { restoreLazyCli } from "./restoreLazy.js";
import { addSecurityOptions } from "./security.js";

export function registerRestore(program: Command): void {
  addSecurityOptions(program
    .command("restore"))
    .description("bring a dumped process back, with its PID; waits for it to exit unless --detach")
    .option("-D, --images <dir>", "image directory")
    .addOption(new Option("--images-dir <dir>", "image directory (CRIU's spelling)").hideHelp())
    .option("-d, --detach", "return once the process runs, instead of waiting for it")
    .option("--pidfile <file>", "write the restored PID to this file")
    .option("-j, --shell-job", "restore into this shell's session and terminal")
    .option("--status-fd <fd>", "write one byte to this fd when the process runs again", parseIntArg)
    .option("--json", "print a JSON summary")
    .option("--lazy", "lazy images: resume before the memory arrived (a lazy-pages daemon, or --page-server, fills it)")
    .addOption(new Option("--lazy-pages", "CRIU's spelling of --lazy").hideHelp())
    .option("--page-server [addr:port]", "with --lazy: fill the memory from this page server in this process (no separate daemon)")
    .addOption(new Option("--address <addr>").hideHelp())
    .addOption(new Option("--port <port>").hideHelp())
    .option("--retry-for <seconds>", "with --page-server: if the page server or the link dies, retry this long before killing the process", parseSeconds, 10)
    .option("--max-rate <MB/s>", "with --page-server: cap the background stream", parseRate)
    .action(async (o) => {
      if (o.lazy || o.lazyPages) return restoreLazyCli(o);
      const r = restore({ images: imagesDir(o), shellJob: o.shellJob });
      if (o.pidfile) fs.writeFileSync(o.pidfile, `${r.pid}\n`);
      if (o.statusFd !== undefined) signalStatusFd(o.statusFd);
      if (o.json) process.stdout.write(JSON.stringify(r) + "\n");
      else if (process.stderr.isTTY) process.stderr.write(`restored ${r.pid} in ${r.durationMs.toFixed(1)} ms\n`);
      if (o.detach) return;
      process.exitCode = await waitForExit(r.pid);
    });
}
