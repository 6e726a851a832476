import type { Command } from "commander";
import { defaultKeyFile, generateKeyFile } from "../net/keys.js";

export function registerKeygen(program: Command): void {
  program
    .command("keygen")
    .description("make a 256-bit pre-shared key (mode 0600) that authenticates and encrypts ferry's connections; copy it to the other host")
    .option("--out <file>", "where to write it (default: $FERRY_KEY, else ~/.config/ferry/key)")
    .action((o: { out?: string }) => {
      const k = generateKeyFile(o.out ?? defaultKeyFile());
      process.stderr.write(`ferry keygen: key ${k.id} written to ${k.file}; copy it to the other host (same path, or --key FILE there)\n`);
    });
}
