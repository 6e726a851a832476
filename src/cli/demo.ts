import path from "node:path";
import type { Command } from "commander";
import { runDemo } from "../demo/demo.js";

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description("two hosts on this machine, a counter, and a live migration from one to the other")
    .option("--mode <mode>", "migration mode (lazy, stop-copy, precopy, hybrid)", "hybrid")
    .option("--report <file.html>", "where to write the HTML report", "ferry-demo-report.html")
    .action(async (o) => {
      await runDemo({ mode: o.mode, report: path.resolve(o.report) });
    });
}
