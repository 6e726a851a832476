import { Command, Option } from "commander";
import { dump } from "../dump/index.js";
import { FerryError } from "../errors.js";
import { signalStatusFd, parseIntArg, imagesDir } from "./common.js";

export function registerDump(program: Command): void {
  program
    .command("dump")
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
    .action((pidArg: string | undefined, o) => {
      const pid = Number(o.tree ?? pidArg);
      if (!pidArg && !o.tree) throw new FerryError("FERRY_USAGE", "which process? give a PID (ferry dump PID -D DIR)");
      const r = dump({ pid, images: imagesDir(o), leaveRunning: o.leaveRunning, leaveStopped: o.leaveStopped, shellJob: o.shellJob });
      if (o.statusFd !== undefined) signalStatusFd(o.statusFd);
      if (o.json) process.stdout.write(JSON.stringify(r) + "\n");
      else if (process.stderr.isTTY) {
        process.stderr.write(`dumped ${pid}: ${r.pages} pages (${r.zeroPagesSkipped} zero pages skipped), frozen ${r.frozenMs.toFixed(1)} ms, total ${r.durationMs.toFixed(1)} ms\n`);
      }
    });
}
