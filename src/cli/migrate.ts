import fs from "node:fs";
import { Command, Option } from "commander";
import { parseEndpoint } from "../net/endpoint.js";
import { migrate } from "../migrate/source.js";
import { MODES, type Mode } from "../migrate/protocol.js";
import { COMPRESS_SETTINGS, type CompressSetting } from "../migrate/compression.js";
import { Timeline } from "../migrate/timeline.js";
import { MigrateProgress } from "../migrate/progress.js";
import { writeReport } from "../migrate/report.js";
import type { MigrateSummary } from "../migrate/summary.js";
import { abortOnSignals, parseIntArg, parsePid, parseSeconds, phaseWriter } from "./common.js";
import { addSecurityOptions, transportOf } from "./security.js";

/** "compression off", "compression on (brotli-q0, 0.21 of the size)" */
export function compressionText(s: MigrateSummary): string {
  const c = s.compression;
  return c.used ? `compression on (${c.codec}, ${c.ratio} of the size)` : `compression off${c.setting === "auto" && c.codec ? " (did not pay on this link)" : ""}`;
}

export function registerMigrate(program: Command): void {
  addSecurityOptions(program
    .command("migrate"))
    .description("move a running process to the host where `ferry agent` listens, in one command")
    .argument("<pid>", "the process to move")
    .requiredOption("--to <addr:port>", "where `ferry agent --listen` runs")
    .addOption(new Option("--mode <mode>", "how memory moves").choices(MODES as string[]).default("hybrid"))
    .option("--max-downtime <ms>", "pre-copy/hybrid: stop the rounds when the predicted downtime fits this", parseIntArg, 50)
    .option("--max-rounds <n>", "pre-copy/hybrid: at most this many rounds", parseIntArg, 8)
    .option("--retry-for <seconds>", "lazy/hybrid: how long a lost destination may take to come back to the page server", parseSeconds, 10)
    .option("--phase-fd <fd>", "write each phase (precopy, dump, switch-over, images, restore, lazy, done, failed) as a line to this fd as it begins", parseIntArg)
    .addOption(new Option("--compress <when>", "compress page data: when it pays on the link (measured), always, never").choices(COMPRESS_SETTINGS as string[]).default("auto"))
    .option("--keep-images <dir>", "keep the source's images in this directory")
    .option("--action-script <file>", "run this at post-dump (CRTOOLS_SCRIPT_ACTION, as CRIU does)")
    .option("--report <file.html>", "write an HTML report with a timeline of the migration")
    .option("--json", "print the JSON summary (default when stdout is not a TTY)")
    .action(async (pidArg: string, o) => {
      const pid = parsePid(pidArg);
      const to = parseEndpoint(o.to, "--to");
      const transport = transportOf(o, to, (l) => process.stderr.write(`ferry migrate: ${l}\n`));
      const timeline = new Timeline();
      timeline.onPhase = phaseWriter(o.phaseFd);
      const progress = new MigrateProgress(timeline);
      progress.start();
      try {
        const summary = await abortOnSignals((signal) => migrate({
          pid, to, transport, mode: o.mode as Mode, maxDowntimeMs: o.maxDowntime, maxRounds: o.maxRounds, compress: o.compress as CompressSetting,
          retryForMs: o.retryFor * 1000, keepImages: o.keepImages, actionScript: o.actionScript, timeline, signal,
          log: (l) => process.stderr.write(`\r\x1b[Kferry migrate: ${l}\n`),
        }));
        progress.stop();
        if (o.report) fs.writeFileSync(o.report, writeReport(summary, timeline, { to: o.to, mode: o.mode, maxDowntimeMs: o.maxDowntime, maxRounds: o.maxRounds, compress: o.compress }));
        if (o.json || !process.stdout.isTTY) process.stdout.write(JSON.stringify(summary) + "\n");
        else {
          process.stderr.write(`ferry migrate: process ${pid} runs at ${o.to} (${summary.mode}): downtime ${summary.downtimeMs} ms, total ${summary.totalMs} ms, ${(summary.bytesSent / 1e6).toFixed(1)} MB sent, ${summary.rounds.length} rounds, ${summary.faults} faults, ${compressionText(summary)}\n`);
        }
      } finally {
        progress.stop();
      }
    });
}
