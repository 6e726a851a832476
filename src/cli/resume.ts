import type { Command } from "commander";
import { parsePid } from "./common.js";
import { resumeFrozen } from "../lazy/frozen.js";

export function registerResume(program: Command): void {
  program
    .command("resume")
    .description("let a source that a failed lazy migration left frozen run again where it is")
    .argument("<pid>", "the frozen source process")
    .action((pidArg: string) => {
      resumeFrozen(parsePid(pidArg));
    });
}
