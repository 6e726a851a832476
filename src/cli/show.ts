import fs from "node:fs";
import { Command } from "commander";
import { showImages } from "../images/show.js";

export function registerShow(program: Command): void {
  program
    .command("show")
    .description("print an image directory as readable JSON (like CRIU's crit)")
    .argument("<dir>", "image directory")
    .action((dir: string) => {
      fs.writeSync(1, JSON.stringify(showImages(dir), null, 2) + "\n");
    });
}
