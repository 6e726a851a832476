/**
 * The migration scenario (issue 6): a victim of `totalMiB` (a cold set written once, a hot set of
 * `hotMiB` rewritten at a steady rate: test/victims/migrate_hot.c) moved from hA to hB with
 * `ferry agent` and `ferry migrate` over TLS, in each mode, beside the link's own bandwidth
 * measured in the same run. The victim checks every page of its memory at the destination.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FerryError } from "../src/errors.js";
import { generateKeyFile } from "../src/net/keys.js";
import { createHosts, type TwoHosts } from "../src/hosts/hosts.js";
import type { Mode } from "../src/migrate/protocol.js";
import type { MigrateSummary } from "../src/migrate/summary.js";
import { lastJson, startFerryIn, startVictimIn } from "../test/harness/hosts.js";
import { finishVictim } from "../test/harness/victims.js";
import { RunnerProcess } from "./children.js";
import type { Cleanup } from "./cleanup.js";
import type { LinkProbe } from "./link.js";
import { median } from "./summary.js";
import { sleep } from "./victim.js";

export interface MigrateShape {
  /** the victim's memory: cold set + hot set */
  totalMiB: number;
  hotMiB: number;
  /** hot pages the victim rewrites per tick (a tick is ~1 ms of sleep plus the writes) */
  pagesPerTick: number;
}

/** The issue's targets. */
export const MIGRATE_TARGETS = {
  /** hybrid and pre-copy */
  downtimeMs: 60,
  /** bytes sent ÷ (touched memory + memory re-dirtied after it was sent) */
  bytesRatio: 1.1,
} as const;

/** One migration, the figures of its summary that the table shows. */
export interface MigrateCycle {
  mode: Mode;
  downtimeMs: number;
  totalMs: number;
  bytesSent: number;
  /** distinct pages that travelled (the victim's touched memory, heap and stack included) */
  pagesMoved: number;
  /** pages sent again because they were written after they were sent */
  redirtiedPages: number;
  /** pages the lazy page server sent again (a fault met them on their way) */
  faultResends: number;
  rounds: number;
  /** the rewrite rate of the pre-copy rounds after the first, MB/s (null without such rounds) */
  dirtyMBps: number | null;
  faults: number;
  /** whether page data went compressed (--compress auto, the default) */
  compression: MigrateSummary["compression"];
  /** the switch-over's steps on both sides (ms from the freeze): which step made the downtime */
  downtimeSteps: MigrateSummary["downtimeSteps"];
  verdict: string;
  pass: boolean;
}

export interface MigrateModeSummary {
  mode: Mode;
  cycles: number;
  downtimeMs: number;
  totalMs: number;
  bytesSent: number;
  /** bytes sent ÷ the victim's memory size */
  bytesPerMemory: number;
  /** bytes sent ÷ ((pages moved + re-dirtied resends) × 4 KiB): the issue's ≤ 1.1 */
  bytesPerMoved: number;
  rounds: number;
  faults: number;
  dirtyMBps: number | null;
  verdict: "PASS" | "FAIL";
  runs: MigrateCycle[];
}

export interface MigrateReport {
  shape: MigrateShape;
  transport: "tls";
  link: LinkProbe;
  targets: typeof MIGRATE_TARGETS;
  modes: MigrateModeSummary[];
  verdict: "PASS" | "FAIL";
}

const PAGE = 4096;
let port = 7400 + (process.pid % 200);

/** Both hosts for the whole scenario; a key for TLS; the link probed once, then each mode `runs` times in turn. */
export async function runMigrate(shape: MigrateShape, modes: Mode[], runs: number, linkBytes: number, cleanup: Cleanup): Promise<MigrateReport> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-bench-migrate-"));
  const forgetDir = cleanup.add("migrate work directory", () => fs.rmSync(dir, { recursive: true, force: true }));
  const hosts = createHosts();
  const forgetHosts = cleanup.add("hosts hA, hB", () => hosts.destroy());
  try {
    const key = path.join(dir, "key");
    generateKeyFile(key);
    const link = await probeLink(hosts, key, linkBytes);
    process.stderr.write(`bench: link hA → hB: TCP ${link.tcpGBps.toFixed(2)} GB/s, TLS ${link.tlsGBps.toFixed(2)} GB/s\n`);
    const cycles: MigrateCycle[] = [];
    for (let run = 1; run <= runs; run++) {
      for (const mode of modes) {
        const c = await migrateOnce(hosts, key, shape, mode);
        cycles.push(c);
        process.stderr.write(
          `bench: migrate ${shape.totalMiB} MiB --mode ${mode} run ${run}/${runs}: downtime ${c.downtimeMs.toFixed(1)} ms, total ${c.totalMs.toFixed(0)} ms, ` +
          `${(c.bytesSent / 2 ** 20).toFixed(0)} MiB sent, ${c.rounds} rounds, ${c.faults} faults, victim: ${c.pass ? "PASS" : c.verdict}\n` +
          `bench:   steps (ms from the freeze): ${c.downtimeSteps.map((st) => `${st.where[0]}:${st.name} @${st.at.toFixed(1)}+${st.ms.toFixed(1)}`).join(", ")}\n`,
        );
      }
    }
    const summaries = modes.map((mode) => summarizeMode(mode, shape, cycles.filter((c) => c.mode === mode)));
    return {
      shape, transport: "tls", link, targets: MIGRATE_TARGETS, modes: summaries,
      verdict: summaries.every((s) => s.verdict === "PASS") ? "PASS" : "FAIL",
    };
  } finally {
    hosts.destroy();
    forgetHosts();
    fs.rmSync(dir, { recursive: true, force: true });
    forgetDir();
  }
}

/** TCP and TLS bandwidth of one connection from hA to hB, best of 3 each, on `cpus` (default: all). */
export async function probeLink(hosts: TwoHosts, key: string, bytes: number, cpus = `0-${os.availableParallelism() - 1}`): Promise<LinkProbe> {
  const rate = async (kind: "tcp" | "tls") => {
    const addr = `127.100.0.2:${port++}`;
    const common = ["--transport", kind, "--key", key, "--bytes", String(bytes), "--tries", "3"];
    const receiver = new RunnerProcess("link-recv", ["--listen", addr, ...common], cpus, [], (argv, o) => hosts.b.spawn(argv, o));
    let sender: RunnerProcess | null = null;
    try {
      await receiver.next("listening", 30_000);
      sender = new RunnerProcess("link-send", ["--to", addr, ...common], cpus, [], (argv, o) => hosts.a.spawn(argv, o));
      const { report } = await sender.next<{ gbps: number }>("link", 120_000);
      await receiver.next("received", 30_000);
      return report.gbps;
    } finally {
      await sender?.stop();
      await receiver.stop();
    }
  };
  return { bytes, tcpGBps: await rate("tcp"), tlsGBps: await rate("tls") };
}

async function migrateOnce(hosts: TwoHosts, key: string, shape: MigrateShape, mode: Mode): Promise<MigrateCycle> {
  const v = await startVictimIn(hosts.a, "migrate_hot", [String(shape.totalMiB - shape.hotMiB), String(shape.hotMiB), String(shape.pagesPerTick)]);
  try {
    const addr = `127.100.0.2:${port++}`;
    const timeoutMs = 120_000 + shape.totalMiB * 100;
    const agent = startFerryIn(hosts.b, ["agent", "--listen", addr, "--once", "--key", key], { statusFd: true, timeoutMs });
    await agent.ready;
    await sleep(300); // the victim rewrites its hot set: the migration starts in the steady state
    const run = await startFerryIn(hosts.a, ["migrate", String(v.pid), "--to", addr, "--mode", mode, "--json", "--key", key], { timeoutMs }).done;
    const a = await agent.done;
    if (run.code !== 0) throw new FerryError("FERRY_BENCH", `ferry migrate --mode ${mode} failed: ${run.stderr.trim()}`);
    if (a.code !== 0) throw new FerryError("FERRY_BENCH", `ferry agent (--mode ${mode}) failed: ${a.stderr.trim()}`);
    const s = lastJson<MigrateSummary>(run);
    const pid = hosts.b.rootPid(s.restoredPid);
    const verdict = pid ? await finishVictim(pid, v.resultFile, 60_000 + shape.totalMiB * 50) : "FAIL: the victim does not run in hB";
    const later = s.rounds.slice(1);
    return {
      mode, downtimeMs: s.downtimeMs, totalMs: s.totalMs, bytesSent: s.bytesSent,
      pagesMoved: s.pageTransfers.pages, redirtiedPages: s.pageTransfers.redirtiedResends, faultResends: s.pageTransfers.faultResends,
      rounds: s.rounds.length,
      dirtyMBps: later.length ? median(later.map((r) => r.dirtyRate * PAGE / 1e6)) : null,
      faults: s.faults, compression: s.compression, downtimeSteps: s.downtimeSteps,
      verdict, pass: verdict === "PASS",
    };
  } finally {
    fs.rmSync(v.dir, { recursive: true, force: true });
  }
}

function summarizeMode(mode: Mode, shape: MigrateShape, cycles: MigrateCycle[]): MigrateModeSummary {
  const med = (pick: (c: MigrateCycle) => number) => median(cycles.map(pick));
  const dirty = cycles.map((c) => c.dirtyMBps).filter((d): d is number => d !== null);
  return {
    mode,
    cycles: cycles.length,
    downtimeMs: med((c) => c.downtimeMs),
    totalMs: med((c) => c.totalMs),
    bytesSent: med((c) => c.bytesSent),
    bytesPerMemory: med((c) => c.bytesSent / (shape.totalMiB * 2 ** 20)),
    bytesPerMoved: med((c) => c.bytesSent / ((c.pagesMoved + c.redirtiedPages) * PAGE)),
    rounds: med((c) => c.rounds),
    faults: med((c) => c.faults),
    dirtyMBps: dirty.length ? median(dirty) : null,
    verdict: cycles.every((c) => c.pass) ? "PASS" : "FAIL",
    runs: cycles,
  };
}
