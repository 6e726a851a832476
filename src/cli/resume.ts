import type { Command } from "commander";
import { FerryError } from "../errors.js";
import { resumeFrozen } from "../lazy/frozen.js";

export function registerResume(program: Command): void {
  program
    .command("resume")
    .description("let a source that a failed lazy migration left frozen run again where it is")
    .argument("<pid>", "the frozen source process")
    .action((pidArg: string) => {
      const pid = Number(pidArg);
      if (!Number.isInteger(pid) || pid <= 0) throw new FerryError("FERRY_BAD_PID", `not a process ID: ${pidArg}`);
      resumeFrozen(pid);
    });
}
