import { Command, Option } from "commander";
import { dump } from "../dump/index.js";
import { FerryError } from "../errors.js";
import { signalStatusFd, parseIntArg, parseSeconds, imagesDir } from "./common.js";
import { dumpLazy } from "./dumpLazy.js";
import { addSecurityOptions } from "./security.js";

export function registerDump(program: Command): void {
  addSecurityOptions(program
    .command("dump"))
    .description("freeze a process and write its state to an image directory (kills it unless told otherwise)")
    .argument("[pid]", "process to dump")
    .option("-t, --tree <pid>", "process to dump (CRIU's spelling)")
    .option("-D, --images <dir>", "image directory")
    .addOption(new Option("--images-dir <dir>", "image directory (CRIU's spelling)").hideHelp())
    .option("-R, --leave-running", "keep the process running after the dump")
    .option("-s, --leave-stopped", "leave the process stopped (SIGSTOP) after the dump")
    .option("-j, --shell-job", "the process is a job of a shell: keep its session and terminal")
    .option("--status-fd <fd>", "write one byte to this fd when the dump is complete", parseIntArg)
    .option("--json", "print a JSON summary")
    .option("--lazy", "lazy migration: write all but private memory, keep the process frozen and serve its pages (--listen)")
    .addOption(new Option("--lazy-pages", "CRIU's spelling of --lazy").hideHelp())
    .option("--listen <addr:port>", "with --lazy: where the page server listens")
    .addOption(new Option("--address <addr>", "page server address (CRIU's spelling)").hideHelp())
    .addOption(new Option("--port <port>", "page server port (CRIU's spelling)").hideHelp())
    .option("--hold-tcp <seconds>", "keep the dumped TCP connections alive this long for the restore (0: not at all)", parseIntArg, 600)
    .option("--retry-for <seconds>", "with --lazy: how long a lost destination may take to come back", parseSeconds, 30)
    .action((pidArg: string | undefined, o) => {
      const pid = Number(o.tree ?? pidArg);
      if (!pidArg && !o.tree) throw new FerryError("FERRY_USAGE", "which process? give a PID (ferry dump PID -D DIR)");
      if (o.lazy || o.lazyPages) return dumpLazy(pid, o);
      const r = dump({ pid, images: imagesDir(o), leaveRunning: o.leaveRunning, leaveStopped: o.leaveStopped, shellJob: o.shellJob, holdTcpSeconds: o.holdTcp });
      if (o.statusFd !== undefined) signalStatusFd(o.statusFd);
      if (o.json) process.stdout.write(JSON.stringify(r) + "\n");
      else if (process.stderr.isTTY) {
        process.stderr.write(`dumped ${pid}: ${r.pages} pages (${r.zeroPagesSkipped} zero pages skipped), frozen ${r.frozenMs.toFixed(1)} ms, total ${r.durationMs.toFixed(1)} ms\n`);
      }
    });
}
