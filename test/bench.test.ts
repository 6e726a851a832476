/**
 * The benchmark itself works: in --quick mode it dumps and restores a 64 MiB sweeper, a tree of
 * 2 processes × 2 threads × 8 MiB beside a 16 MiB sweeper, and a process holding 50 established TCP
 * connections beside the same process with its listener only, and migrates a 64 MiB victim with an
 * 8 MiB hot set between two hosts in each mode, and a 64 MiB sweeper lazily (the lazy scenario);
 * every victim finds itself right after the restore or the migration, and latest.json holds every figure with a positive value. A smoke test of the
 * benchmark, not a timing assertion.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { BenchReport } from "../bench/summary.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const RUN = path.join(ROOT, "dist/bench/run.js");

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; pid: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    const pid = child.pid!;
    let stdout = "", stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr, pid }));
  });
}

function assertPositive(obj: Record<string, unknown>, keys: string[], where: string): void {
  for (const k of keys) {
    const v = obj[k];
    assert.ok(typeof v === "number" && Number.isFinite(v) && v > 0, `${where}.${k} should be a positive number, is ${v}`);
  }
}

const shmDirs = () => new Set(fs.readdirSync("/dev/shm").filter((f) => f.startsWith("ferry-bench-")));

const SIZE_FIELDS = [
  "dumpMs", "dumpFrozenMs", "dumpCommandMs", "restoreMs", "restoreCommandMs", "downtimeMs", "downtimeEndToEndMs",
  "dumpGBps", "restoreGBps", "dumpFloorMs", "restoreFloorMs", "dumpPeakRssMiB", "restorePeakRssMiB", "baselineRssMiB", "imageBytes",
];

// this checkout's (another checkout's benchmark has its own); the migration's victims ran in the
// benchmark's hosts and went with them (checked below)
const VICTIMS = ["sweeper", "treesweeper", "tcpconns"].map((v) => path.join(ROOT, "bench/.build", v));

test("npm run bench --quick: a 64 MiB victim, a process tree and 50 TCP connections survive dump and restore, a 64 MiB victim migrates in every mode and lazily, and the report has every figure", { timeout: 300_000 }, async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-bench-test-"));
  const before = shmDirs();
  let runner = 0;
  try {
    const { code, stdout, stderr, pid } = await runBench(["--quick", "--out", out]);
    runner = pid;
    assert.equal(code, 0, `the benchmark failed:\n${stderr}`);

    const report = JSON.parse(fs.readFileSync(path.join(out, "latest.json"), "utf8")) as BenchReport;
    assert.equal(report.schema, "ferry-bench/1");
    assert.deepEqual(report.options.sizesMiB, [64]);
    assert.deepEqual(report.options.scenarios, ["single", "tree", "tcp", "migrate", "lazy"]);
    assert.ok(report.limits);
    assertPositive(report.limits as unknown as Record<string, unknown>, [
      "bytes", "memcpyGBps", "vmReadvGBps", "vmReadvToMemoryGBps", "shmWriteGBps", "shmReadGBps",
      "vmWritevColdGBps", "memcpyColdGBps", "uffdCopyColdGBps", "crc32GBps",
    ], "limits");

    assert.equal(report.sizes.length, 1);
    const size = report.sizes[0];
    assert.equal(size.sizeMiB, 64);
    assert.equal(size.verdict, "PASS");
    assertPositive(size as unknown as Record<string, unknown>, SIZE_FIELDS, "sizes[0]");

    const [cycle] = size.runs;
    assert.match(cycle.victim.verdict, /^PASS pages=16384 /);
    assert.ok(cycle.victim.cpuTicksAfterRestore > 0, "the restored victim used no CPU: did it run?");
    assert.ok(cycle.dump.pages >= 16384, `the dump holds ${cycle.dump.pages} pages, the victim touched 16384`);
    assert.ok(cycle.restore.bytes >= 64 * 2 ** 20);
    assert.ok(cycle.downtime.frozenPlusRestoreMs >= cycle.dump.frozenMs);

    // The tree: 2 processes × 2 threads × 8 MiB, every process checked, beside one process of 16 MiB.
    const tree = report.tree;
    assert.ok(tree, "the report has no tree scenario");
    assert.deepEqual(tree.shape, { processes: 2, threadsPerProcess: 2, mibPerProcess: 8, totalMiB: 16 });
    assert.equal(tree.verdict, "PASS");
    assertPositive(tree.tree as unknown as Record<string, unknown>, SIZE_FIELDS, "tree.tree");
    assertPositive(tree.single as unknown as Record<string, unknown>, SIZE_FIELDS, "tree.single");
    assertPositive(tree.ratio, ["dump", "dumpFrozen", "restore", "downtime", "rootDowntime"], "tree.ratio");
    assertPositive(tree.rootDowntimeMs, ["tree", "single"], "tree.rootDowntimeMs");
    assert.ok(tree.rootDowntimeMs.tree >= tree.tree.downtimeMs, "the root's downtime bound is below the frozen + restore time");
    const [treeCycle] = tree.tree.runs;
    assert.equal(treeCycle.processes, 2);
    assert.match(treeCycle.victim.verdict, /^PASS procs=2 threads=4 pages=4096 /);
    assert.ok(treeCycle.victim.cpuTicksAfterRestore > 0, "the restored tree used no CPU: did it run?");
    assert.ok(treeCycle.dump.pages >= 4096, `the dump holds ${treeCycle.dump.pages} pages, the tree touched 4096`);
    assert.match(tree.single.runs[0].victim.verdict, /^PASS pages=4096 /);

    // TCP: 50 connections (101 sockets) come back, each carrying data both ways.
    const tcp = report.tcp;
    assert.ok(tcp, "the report has no tcp scenario");
    assert.equal(tcp.connections, 50);
    assert.equal(tcp.sockets, 101);
    assert.ok(tcp.queuedConnections > 0, "no connection had bytes queued");
    assert.equal(tcp.verdict, "PASS");
    const tcpFields = ["dumpMs", "dumpFrozenMs", "dumpCommandMs", "restoreMs", "restoreCommandMs", "downtimeMs", "downtimeEndToEndMs", "dumpPeakRssMiB", "restorePeakRssMiB", "imageBytes"];
    assertPositive(tcp.loaded as unknown as Record<string, unknown>, tcpFields, "tcp.loaded");
    assertPositive(tcp.baseline as unknown as Record<string, unknown>, tcpFields, "tcp.baseline");
    assertPositive(tcp.perConnectionMs, ["dump", "dumpFrozen", "restore", "downtime"], "tcp.perConnectionMs");
    for (const k of ["dumpAdded", "dumpFrozenAdded", "restoreAdded", "downtimeAdded"] as const) {
      assert.ok(Number.isFinite(tcp.perConnectionMs[k]), `tcp.perConnectionMs.${k} is ${tcp.perConnectionMs[k]}`); // a difference: may be noise around 0
    }
    assert.match(tcp.loaded.runs[0].victim.verdict, /^PASS connections=50 queued=\d+ both_ways=50$/);
    assert.match(tcp.baseline.runs[0].victim.verdict, /^PASS connections=0 /);
    assert.ok(tcp.loaded.imageBytes > tcp.baseline.imageBytes, "50 connections take no room in the images");

    // Migration between two hosts: every mode moved the whole victim, which found every page right there.
    const m = report.migrate;
    assert.ok(m, "the report has no migrate scenario");
    assert.deepEqual(m.shape, { totalMiB: 64, hotMiB: 8, pagesPerTick: 64 });
    assert.equal(m.verdict, "PASS");
    assertPositive(m.link as unknown as Record<string, unknown>, ["bytes", "tcpGBps", "tlsGBps"], "migrate.link");
    assert.deepEqual(m.modes.map((x) => x.mode), ["stop-copy", "lazy", "precopy", "hybrid"]);
    for (const x of m.modes) {
      assert.equal(x.verdict, "PASS", `--mode ${x.mode}: ${x.runs[0].verdict}`);
      assertPositive(x as unknown as Record<string, unknown>, ["downtimeMs", "totalMs", "bytesSent", "bytesPerMemory", "bytesPerMoved"], `migrate ${x.mode}`);
      assert.ok(x.runs[0].pagesMoved >= 64 * 256, `--mode ${x.mode} moved ${x.runs[0].pagesMoved} pages, the victim touched ${64 * 256}`);
      if (x.mode === "precopy" || x.mode === "hybrid") assert.ok(x.rounds >= 1, `--mode ${x.mode}: no pre-copy round`);
    }

    // Lazy: 64 MiB moved from host A to host B while it sweeps, every page checked afterwards.
    const lazy = report.lazy;
    assert.ok(lazy, "the report has no lazy scenario");
    assert.equal(lazy.verdict, "PASS");
    assertPositive(lazy.link as unknown as Record<string, unknown>, ["bytes", "tcpGBps", "tlsGBps", "tcpRttUs", "tlsRttUs", "uffdCopyColdGBps"], "lazy.link");
    assert.deepEqual(lazy.sizes.map((s) => s.sizeMiB), [64]);
    assertPositive(lazy.sizes[0] as unknown as Record<string, unknown>, [
      "downtimeMs", "bytesBeforeRestore", "faults", "faultP50Us", "faultP99Us", "allPagesMs", "mbPerS", "daemonPeakRssMiB",
      "daemonRssBeforeMiB", "sourcePeakRssMiB", "sourceDumpFrozenMs", "destinationOpMs", "linkRttMs", "allPagesFloorMs",
    ], "lazy.sizes[0]");
    const [lazyCycle] = lazy.sizes[0].runs;
    assert.match(lazyCycle.victim.verdict, /^PASS pages=16384 /);
    assert.ok(lazyCycle.victim.cpuTicksAfterRestore > 0, "the lazily restored victim used no CPU: did it run?");
    assert.equal(lazyCycle.lazy.outcome, "complete");
    assert.ok(lazyCycle.lazy.pages >= 16384, `${lazyCycle.lazy.pages} lazy pages, the victim touched 16384`);
    assert.equal(lazyCycle.lazy.pagesByFault + lazyCycle.lazy.pagesPushed, lazyCycle.lazy.pages, "every page arrived once, asked for or pushed");
    const timed = lazyCycle.lazy.faultLatencyUs.count;
    assert.ok(timed > 0 && timed <= lazyCycle.lazy.faults, `${timed} fault latencies for ${lazyCycle.lazy.faults} faults`);
    assert.ok(lazyCycle.source.stats.pagesSent >= 16384, "the source served every page");
    const { faultRequests, faultServiceUs } = lazyCycle.source.stats;
    assert.equal(faultServiceUs?.count, faultRequests, "every fault request's service was timed at the source");

    const table = fs.readFileSync(path.join(out, "latest.md"), "utf8");
    assert.ok(stdout.includes(table), "the table is printed as saved");
    assert.match(table, /CRIU 4\.2/);
    assert.match(table, /process_vm_readv/);
    assert.match(table, /memcpy/);
    assert.match(table, /tree: 2 processes × 2 threads × 8 MiB/);
    assert.match(table, /TCP repair of 50 established connections/);
    assert.match(table, /live migration of 64 MiB between two hosts \(8 MiB hot set\)/);
    assert.match(table, /lazy \(post-copy\) migration between two hosts/);
    assert.match(table, /fault latency p99/);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
  // Nothing left behind: no work directory of this run in /dev/shm (named after its runner's
  // PID: another benchmark on the machine has its own), no victim.
  const left = [...shmDirs()].filter((d) => !before.has(d) && d.startsWith(`ferry-bench-${runner}-`));
  assert.deepEqual(left, [], "the benchmark left /dev/shm directories behind");
  const victims = fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      const cmdline = fs.readFileSync(`/proc/${p}/cmdline`, "utf8");
      return VICTIMS.some((v) => cmdline.includes(v));
    } catch {
      return false;
    }
  });
  assert.deepEqual(victims, [], "the benchmark left victims running");
  const netns = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  assert.ok(!new RegExp(`ferry-h[AB]-${runner}-`).test(netns), `the benchmark left its hosts behind: ${netns}`);
});
