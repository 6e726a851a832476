import type { Command } from "commander";
import { registerCheck } from "./check.js";
import { registerDump } from "./dump.js";
import { registerRestore } from "./restore.js";
import { registerShow } from "./show.js";
import { registerLazyPages } from "./lazyPages.js";
import { registerResume } from "./resume.js";
import { registerKeygen } from "./keygen.js";
import { registerAgent } from "./agent.js";
import { registerMigrate } from "./migrate.js";
import { registerDemo } from "./demo.js";
import { registerHoldSockets } from "./holdSockets.js";

/** Each command lives in its own file and registers itself here. */
export function registerCommands(program: Command): void {
  registerCheck(program);
  registerDump(program);
  registerRestore(program);
  registerShow(program);
  registerLazyPages(program);
  registerResume(program);
  registerKeygen(program);
  registerAgent(program);
  registerMigrate(program);
  registerDemo(program);
  registerHoldSockets(program);
}
