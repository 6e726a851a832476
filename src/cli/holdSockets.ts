import { Command } from "commander";
import { FerryError } from "../errors.js";
import { runHolder } from "../files/tcpHolder.js";
import { imagesDir, parseIntArg } from "./common.js";

/** Started by `ferry dump` only (files/tcpHolder.ts): holds the dumped TCP connections until the restore. */
export function registerHoldSockets(program: Command): void {
  program
    .command("hold-sockets", { hidden: true })
    .description("keep the TCP connections ferry dump handed over (fds 3...) until ferry restore takes them")
    .option("-D, --images <dir>", "image directory")
    .requiredOption("--ids <ids>", "files.img ids of the sockets at fds 3, 4, ...")
    .option("--hold-for <seconds>", "give up after this long", parseIntArg, 600)
    .action((o) => {
      const ids = String(o.ids).split(",").map(Number);
      if (!ids.length || ids.some((id) => !Number.isInteger(id) || id <= 0)) throw new FerryError("FERRY_USAGE", `--ids: not a list of file ids: ${o.ids}`);
      runHolder(imagesDir(o), ids, o.holdFor);
    });
}
