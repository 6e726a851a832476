/** ferry's API: the same engine as the CLI, without it. */
export { dump, type DumpOptions, type DumpResult } from "./dump/index.js";
export { restore, waitForExit, type RestoreOptions, type Restored } from "./restore/index.js";
export { showImages } from "./images/show.js";
export { FerryError } from "./errors.js";
export { migrate, type MigrateOptions } from "./migrate/source.js";
export { runAgent, type AgentOptions } from "./migrate/agent.js";
export type { MigrateSummary } from "./migrate/summary.js";
