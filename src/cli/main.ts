#!/usr/bin/env node
import { Command } from "commander";
import { FerryError } from "../errors.js";
import { registerCommands } from "./commands.js";

const program = new Command();
program
  .name("ferry")
  .description("Live migration of running Linux processes")
  .version("0.1.0")
  .showHelpAfterError(false)
  .exitOverride();

registerCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  const err = e as { code?: string; exitCode?: number; message?: string };
  if (err.code?.startsWith("commander.")) {
    // commander already printed help or its own one-line error
    process.exit(err.exitCode ?? 1);
  }
  if (e instanceof FerryError) {
    process.stderr.write(`ferry: ${e.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`ferry: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(70);
}
