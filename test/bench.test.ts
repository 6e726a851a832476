/**
 * The benchmark itself works: in --quick mode it dumps and restores a 64 MiB sweeper, the victim
 * finds every page right after the restore, and latest.json holds every figure with a positive
 * value. A smoke test of the benchmark, not a timing assertion.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { BenchReport } from "../bench/summary.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const RUN = path.join(ROOT, "dist/bench/run.js");

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function assertPositive(obj: Record<string, unknown>, keys: string[], where: string): void {
  for (const k of keys) {
    const v = obj[k];
    assert.ok(typeof v === "number" && Number.isFinite(v) && v > 0, `${where}.${k} should be a positive number, is ${v}`);
  }
}

const shmDirs = () => new Set(fs.readdirSync("/dev/shm").filter((f) => f.startsWith("ferry-bench-")));

test("npm run bench --quick: a 64 MiB victim survives dump and restore, and the report has every figure", { timeout: 180_000 }, async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-bench-test-"));
  const before = shmDirs();
  try {
    const { code, stdout, stderr } = await runBench(["--quick", "--out", out]);
    assert.equal(code, 0, `the benchmark failed:\n${stderr}`);

    const report = JSON.parse(fs.readFileSync(path.join(out, "latest.json"), "utf8")) as BenchReport;
    assert.equal(report.schema, "ferry-bench/1");
    assert.deepEqual(report.options.sizesMiB, [64]);
    assertPositive(report.limits as unknown as Record<string, unknown>, [
      "bytes", "memcpyGBps", "vmReadvGBps", "vmReadvToMemoryGBps", "shmWriteGBps", "shmReadGBps",
      "vmWritevColdGBps", "memcpyColdGBps", "uffdCopyColdGBps", "crc32GBps",
    ], "limits");

    assert.equal(report.sizes.length, 1);
    const size = report.sizes[0];
    assert.equal(size.sizeMiB, 64);
    assert.equal(size.verdict, "PASS");
    assertPositive(size as unknown as Record<string, unknown>, [
      "dumpMs", "dumpFrozenMs", "dumpCommandMs", "restoreMs", "restoreCommandMs", "downtimeMs", "downtimeEndToEndMs",
      "dumpGBps", "restoreGBps", "dumpFloorMs", "restoreFloorMs", "dumpPeakRssMiB", "restorePeakRssMiB", "baselineRssMiB", "imageBytes",
    ], "sizes[0]");

    const [cycle] = size.runs;
    assert.match(cycle.victim.verdict, /^PASS pages=16384 /);
    assert.ok(cycle.victim.cpuTicksAfterRestore > 0, "the restored victim used no CPU: did it run?");
    assert.ok(cycle.dump.pages >= 16384, `the dump holds ${cycle.dump.pages} pages, the victim touched 16384`);
    assert.ok(cycle.restore.bytes >= 64 * 2 ** 20);
    assert.ok(cycle.downtime.frozenPlusRestoreMs >= cycle.dump.frozenMs);

    const table = fs.readFileSync(path.join(out, "latest.md"), "utf8");
    assert.ok(stdout.includes(table), "the table is printed as saved");
    assert.match(table, /CRIU 4\.2/);
    assert.match(table, /process_vm_readv/);
    assert.match(table, /memcpy/);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  // Nothing left behind: no work directory in /dev/shm, no sweeper.
  const left = [...shmDirs()].filter((d) => !before.has(d));
  assert.deepEqual(left, [], "the benchmark left /dev/shm directories behind");
  const sweepers = fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes("bench/.build/sweeper");
    } catch {
      return false;
    }
  });
  assert.deepEqual(sweepers, [], "the benchmark left sweepers running");
});
