/**
 * One-command migration between two hosts (network + PID + mount namespaces joined by a veth):
 * `ferry agent` in hB, `ferry migrate` in hA, for every mode, with a victim that keeps writing a
 * hot set of its memory (and holds a cold set) all along. The victim checks itself afterwards.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { execFileSync, spawn } from "node:child_process";
import type { TwoHosts } from "../src/hosts/hosts.js";
import type { MigrateSummary } from "../src/migrate/summary.js";
import { SWITCH_COST_MS, anotherRound, predictDowntimeMs } from "../src/migrate/policy.js";
import fc from "fast-check";
import { decide } from "../src/migrate/precopy.js";
import { PAGE_IS } from "../src/kernel/pagemapScan.js";
import { buildVictim, finishVictim } from "./harness/victims.js";
import { lastJson, startFerryIn, startVictimIn, stateOf, withHosts } from "./harness/hosts.js";
import { screenshot, countColour } from "./harness/chromium.js";
import { FERRY_CLI } from "./harness/ferry.js";
import { writeReport } from "../src/migrate/report.js";
import { Timeline } from "../src/migrate/timeline.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
let port = 7600 + (process.pid % 300);

/** Start the agent in hB, the victim in hA, migrate it; returns the summary and the victim's root PID at hB. */
async function migrateVictim(hosts: TwoHosts, mode: string, victimArgs: string[], extra: string[] = []) {
  const v = await startVictimIn(hosts.a, "migrate_hot", victimArgs);
  const addr = `127.100.0.2:${port++}`;
  const agent = startFerryIn(hosts.b, ["agent", "--listen", addr, "--once", "--insecure"], { statusFd: true });
  await agent.ready;
  await sleep(200); // it writes its hot set meanwhile
  const run = await startFerryIn(hosts.a, ["migrate", String(v.pid), "--to", addr, "--mode", mode, "--json", "--insecure", ...extra]).done;
  assert.equal(run.code, 0, `migrate failed: ${run.stderr}`);
  const summary = lastJson<MigrateSummary>(run);
  const a = await agent.done;
  assert.equal(a.code, 0, a.stderr);
  const pid = hosts.b.rootPid(summary.restoredPid);
  assert.ok(pid, "the process runs in hB");
  assert.equal(stateOf(v.rootPid), null, "the source copy is gone");
  return { v, summary, pid };
}

function report(mode: string, s: MigrateSummary): void {
  process.stderr.write(`# ${mode}: ${JSON.stringify({ downtimeMs: s.downtimeMs, totalMs: s.totalMs, bytesSent: s.bytesSent, rounds: s.rounds.length, faults: s.faults, pageTransfers: s.pageTransfers })}\n`);
}

test("the round policy: more rounds only while they pay off", () => {
  const bw = 100e6; // 100 MB/s: 1000 pages take about 41 ms
  assert.deepEqual(anotherRound({ round: 1, dirtyPages: 20_000, lastPages: 60_000, bandwidth: bw }, 50, 8), { go: true, why: "" });
  assert.equal(anotherRound({ round: 1, dirtyPages: 500, lastPages: 60_000, bandwidth: bw }, 50, 8).why, "predicted downtime fits the budget");
  assert.equal(anotherRound({ round: 3, dirtyPages: 20_000, lastPages: 20_500, bandwidth: bw }, 50, 8).why, "dirty set stopped shrinking");
  assert.equal(anotherRound({ round: 8, dirtyPages: 20_000, lastPages: 60_000, bandwidth: bw }, 50, 8).why, "8 rounds");
  assert.equal(anotherRound({ round: 2, dirtyPages: 10, lastPages: 60_000, bandwidth: 1 }, 50, 8).why, "dirty set under 64 pages");
  assert.ok(Math.abs(predictDowntimeMs(1000, bw) - (SWITCH_COST_MS + 40.96)) < 0.01);
});

test("the switch-over decides by stretches of pages exactly what a page-by-page walk decides", () => {
  const P = 4096;
  // pages 0..63 of a small address space, each with its own facts
  const page = fc.record({
    lazy: fc.boolean(), tracked: fc.boolean(), sent: fc.boolean(),
    cat: fc.constantFrom(-1, PAGE_IS.PRESENT, PAGE_IS.PRESENT | PAGE_IS.WRITTEN, PAGE_IS.PRESENT | PAGE_IS.PFNZERO, PAGE_IS.SWAPPED, PAGE_IS.SWAPPED | PAGE_IS.WRITTEN, PAGE_IS.WRITTEN),
  });
  fc.assert(fc.property(fc.array(page, { minLength: 1, maxLength: 64 }), (pages) => {
    const runs = (want: (p: (typeof pages)[number]) => boolean) => {
      const out: { start: number; end: number }[] = [];
      pages.forEach((p, i) => {
        if (!want(p)) return;
        const last = out.at(-1);
        if (last && last.end === i * P) last.end += P;
        else out.push({ start: i * P, end: (i + 1) * P });
      });
      return out;
    };
    const tracked = runs((p) => p.tracked);
    // categories are scanned inside tracked ranges only; one region per page is as cut up as it gets
    const regions = pages.flatMap((p, i) => (p.tracked && p.cat >= 0 ? [{ start: i * P, end: (i + 1) * P, categories: p.cat }] : []));
    const lazyRuns = runs((p) => p.lazy).map((r) => ({ vaddr: r.start, nrPages: (r.end - r.start) / P }));
    const got = decide(lazyRuns, tracked, regions, runs((p) => p.sent));
    const want = { keep: [] as number[], needed: [] as number[] };
    pages.forEach((p, i) => {
      if (!p.lazy) return;
      const cat = p.tracked ? p.cat : -1;
      const hasData = cat < 0 || ((cat & (PAGE_IS.PRESENT | PAGE_IS.SWAPPED)) !== 0 && (cat & PAGE_IS.PFNZERO) === 0);
      if (!p.tracked) {
        if (hasData) want.needed.push(i * P);
      } else if (cat < 0) return;
      else if (cat & PAGE_IS.WRITTEN) want.needed.push(i * P);
      else if (!p.sent) return;
      else if (cat & PAGE_IS.PRESENT) {
        if (!(cat & PAGE_IS.PFNZERO)) want.keep.push(i * P);
      } else if (cat & PAGE_IS.SWAPPED) want.needed.push(i * P);
    });
    const pagesOf = (rs: { start: number; end: number }[]) => rs.flatMap((r) => Array.from({ length: (r.end - r.start) / P }, (_, k) => r.start + k * P));
    assert.deepEqual({ keep: pagesOf(got.keep), needed: pagesOf(got.needed) }, want);
  }), { numRuns: 500 });
});

test("the report draws the downtime's steps on both hosts, each with its name and ms, on the switch-over's own axis", () => {
  const steps: MigrateSummary["downtimeSteps"] = [
    { where: "source", name: "seize", at: -0.8, ms: 0.8 },
    { where: "source", name: "mmap VMAs & pages", at: 0.1, ms: 3.4 },
    { where: "source", name: "send images", at: 3.6, ms: 2.5 },
    { where: "destination", name: "clone3", at: 6.4, ms: 1.2 },
    { where: "destination", name: "userfaultfd <hand-off>", at: 7.7, ms: 0.6 },
  ];
  const summary: MigrateSummary = {
    pid: 4242, mode: "hybrid", outcome: "complete", restoredPid: 4242, downtimeMs: 8.5, downtimeSteps: steps, totalMs: 120,
    imageBytes: 60_000, bytesSent: 1e6, rounds: [], faults: 0, faultLatencyUs: null, allPagesMs: null, lazy: null,
    pageTransfers: { pages: 0, transfers: 0, sentOnce: 0, sentTwice: 0, sentMore: 0, redirtiedResends: 0, faultResends: 0 },
    phases: [], restoreMs: 3,
    compression: { setting: "off", codec: null, used: false, framesCompressed: 0, framesSent: 0, rawBytes: 0, wireBytes: 0, ratio: null, measured: null, scope: "pre-copy rounds and images" },
  };
  const html = writeReport(summary, new Timeline(), {});
  const figure = /<svg id="downtime"[^]*?<\/svg>/.exec(html)?.[0];
  assert.ok(figure, "the downtime figure is there");
  for (const st of steps) {
    const name = `${st.where}: ${st.name}`.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
    assert.ok(figure.includes(`>${name}</text>`), `the step ${name} is named`);
    assert.ok(figure.includes(`>${st.ms.toFixed(2)} ms</text>`), `the step ${name} says its ${st.ms} ms`);
  }
  const bars = [...figure.matchAll(/<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"[^>]* class="step (source|destination)"/g)];
  assert.deepEqual(bars.map((b) => b[3]), steps.map((st) => st.where), "one bar per step, coloured by host");
  // on one axis: the seize begins left of the freeze line, each bar as long as its ms says
  const freeze = Number(/<line x1="([\d.]+)"[^>]*class="switch"><title>freeze/.exec(figure)![1]);
  assert.ok(Number(bars[0][1]) < freeze && Math.abs(Number(bars[0][1]) + Number(bars[0][2]) - freeze) < 0.01, "the seize ends at the freeze");
  const perMs = Number(bars[1][2]) / steps[1].ms;
  steps.forEach((st, i) => assert.ok(Math.abs(Number(bars[i][2]) - st.ms * perMs) < 0.01, `bar ${i} is ${st.ms} ms long`));
});

test("build the migration victim", async () => {
  await buildVictim("migrate_hot");
});

for (const mode of ["stop-copy", "lazy", "precopy", "hybrid"]) {
  test(`--mode ${mode}: a victim writing its 4 MiB hot set (32 MiB cold) keeps running at the destination with all of its memory`, async () => {
    await withHosts(async (hosts) => {
      const { v, summary, pid } = await migrateVictim(hosts, mode, ["32", "4"]);
      assert.equal(summary.mode, mode);
      await sleep(300); // it keeps writing there (and faulting, lazily)
      assert.equal(await finishVictim(pid, v.resultFile, 20_000), "PASS");
      assert.ok(summary.downtimeMs > 0);
      if (mode === "precopy" || mode === "hybrid") assert.ok(summary.rounds.length >= 1, "pre-copy rounds ran");
      if (mode === "precopy") {
        // every page went in after the resume, from the agent's own memory: none fetched afterwards
        const l = summary.lazy;
        assert.ok(l && l.outcome === "complete", `the agent installed the pre-copied pages: ${JSON.stringify(l)}`);
        assert.ok(l.pages >= 9 * 1024, `the victim's 36 MiB were installed after the resume (${l.pages} pages)`);
        assert.equal(l.bytesReceived + l.pagesByFault + l.pagesPushed, 0, "no page travelled after the resume");
      }
      report(mode, summary);
    });
  });
}

test("hybrid: no page is sent twice unless it was written after it was sent (the cold set goes exactly once)", async () => {
  await withHosts(async (hosts) => {
    const { v, summary, pid } = await migrateVictim(hosts, "hybrid", ["32", "4"], ["--max-downtime", "1"]);
    assert.equal(await finishVictim(pid, v.resultFile, 20_000), "PASS");
    const t = summary.pageTransfers;
    report("hybrid, transfers", summary);
    assert.ok(summary.rounds.length >= 2, `several rounds with a 1 ms budget (${summary.rounds.length})`);
    assert.ok(t.pages >= 9 * 1024, `the 36 MiB of the victim travelled (${t.pages} pages)`);
    assert.equal(t.transfers - t.pages, t.redirtiedResends + t.faultResends, "every extra transfer is a page written after it was sent");
    // the page server answers a fault on a page whose pushed copy is still on the wire again (one prefetch window per fault at most)
    assert.ok(t.faultResends <= summary.faults * 16, `pages sent again for ${summary.faults} faults while on their way: ${t.faultResends}`);
    // only the hot set (1024 pages) and the heap and stack can be dirty again: the 8192 cold pages go once
    assert.ok(t.sentOnce >= 8192, `cold pages sent once: ${t.sentOnce}`);
    assert.ok(t.transfers - t.pages <= summary.rounds.length * (1024 + 64), `extra transfers ${t.transfers - t.pages} within the rewritten hot set per round`);
  });
});

for (const mode of ["stop-copy", "precopy"]) {
  test(`--mode ${mode} --compress on: compressible memory travels compressed (images and rounds) and the victim finds every page right`, async () => {
    await withHosts(async (hosts) => {
      const { v, summary, pid } = await migrateVictim(hosts, mode, ["32", "4", "64", "compressible"], ["--compress", "on"]);
      assert.equal(await finishVictim(pid, v.resultFile, 20_000), "PASS");
      const c = summary.compression;
      report(`${mode}, compressed`, summary);
      process.stderr.write(`# ${mode} compression: ${JSON.stringify(c)}\n`);
      assert.equal(c.setting, "on");
      assert.equal(c.codec, "brotli-q0", "both sides agreed on the codec");
      assert.ok(c.used && c.framesCompressed > 0, "frames went compressed");
      assert.ok(c.ratio !== null && c.ratio < 0.5, `the compressed frames shrank to ${c.ratio}`);
      // 32 MiB of the 36 compress well: far fewer bytes on the wire than the memory that moved
      assert.ok(summary.bytesSent < t(summary) * 0.5, `${summary.bytesSent} bytes sent for ${t(summary)} bytes of pages`);
    });
  });
}

test("--compress auto (the default) on the veth with incompressible memory leaves compression off, having measured it", async () => {
  await withHosts(async (hosts) => {
    const { v, summary, pid } = await migrateVictim(hosts, "precopy", ["32", "4"]);
    assert.equal(await finishVictim(pid, v.resultFile, 20_000), "PASS");
    const c = summary.compression;
    process.stderr.write(`# auto compression: ${JSON.stringify(c)}\n`);
    assert.equal(c.setting, "auto");
    assert.equal(c.codec, "brotli-q0");
    assert.equal(c.used, false, "nothing was compressed");
    assert.equal(c.framesCompressed, 0);
    assert.equal(c.rawBytes, c.wireBytes);
    assert.ok(c.measured && c.measured.sampleRatio !== null && c.measured.sampleRatio > 0.95, `the samples did not compress: ${c.measured?.sampleRatio}`);
    assert.ok(summary.bytesSent >= t(summary), "every page went whole");
  });
});

test("--compress auto on a slow link (hA's veth shaped to 100 Mbit/s) with compressible memory turns compression on", async () => {
  await withHosts(async (hosts) => {
    hosts.a.run(["tc", "qdisc", "add", "dev", "vA", "root", "tbf", "rate", "100mbit", "burst", "64kb", "latency", "100ms"]);
    const { v, summary, pid } = await migrateVictim(hosts, "precopy", ["32", "4", "64", "compressible"]);
    assert.equal(await finishVictim(pid, v.resultFile, 20_000), "PASS");
    const c = summary.compression;
    process.stderr.write(`# auto compression, slow link: ${JSON.stringify(c)}\n`);
    assert.equal(c.setting, "auto");
    // socket buffers absorb bursts at memory speed, so the estimate runs above 12.5 MB/s; the unshaped veth carries ~1 GB/s
    assert.ok(c.measured?.linkBps && c.measured.linkBps < 100e6, `it found the link slow (12.5 MB/s shaped): ${c.measured?.linkBps} bytes/s`);
    assert.ok(c.used && c.framesCompressed > 0, "compression was turned on");
    assert.ok(summary.bytesSent < t(summary) * 0.6, `${summary.bytesSent} bytes sent for ${t(summary)} bytes of pages`);
  });
});

/** Bytes of the distinct pages that moved. */
function t(s: MigrateSummary): number {
  return s.pageTransfers.pages * 4096;
}

for (const mode of ["precopy", "hybrid"]) {
  test(`--mode ${mode}: memory given back (MADV_DONTNEED) and rewritten while the rounds run reads as the process left it`, async () => {
    await withHosts(async (hosts) => {
      const v = await startVictimIn(hosts.a, "migrate_hot", ["32", "4"]);
      const addr = `127.100.0.2:${port++}`;
      const agent = startFerryIn(hosts.b, ["agent", "--listen", addr, "--once", "--insecure"], { statusFd: true });
      await agent.ready;
      const migrate = startFerryIn(hosts.a, ["migrate", String(v.pid), "--to", addr, "--mode", mode, "--max-downtime", "1", "--json", "--insecure"]);
      for (let i = 0; i < 400 && !fs.existsSync(`${v.resultFile}.zapped`); i++) {
        if (i % 10 === 0 && i >= 10) process.kill(v.rootPid, "SIGUSR1"); // after round 0 has begun
        await sleep(5);
      }
      const run = await migrate.done;
      assert.equal(run.code, 0, run.stderr);
      assert.ok(fs.existsSync(`${v.resultFile}.zapped`), "the victim zapped and rewrote its memory during the migration");
      const summary = lastJson<MigrateSummary>(run);
      assert.equal((await agent.done).code, 0);
      const pid = hosts.b.rootPid(summary.restoredPid)!;
      assert.equal(await finishVictim(pid, v.resultFile, 20_000), "PASS");
    });
  });
}

test("ferry demo runs end to end, shows the counter carrying on in host B and its client keeping its TCP connection, writes the report and leaves nothing behind", async () => {
  const dir = fs.mkdtempSync("/tmp/ferry-demo-test-");
  try {
    const reportFile = `${dir}/report.html`;
    const child = spawn(process.execPath, [FERRY_CLI, "demo", "--report", reportFile], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
      child.on("close", (c) => (clearTimeout(timer), resolve(c)));
    });
    assert.equal(code, 0, out);
    const counting = /now runs in host B, kept counting \((\d+) → (\d+)\), memory checksum unchanged/.exec(out);
    assert.ok(counting, out);
    // the client in host B, on one TCP connection the whole time, heard counts from before the migration and from after it
    const client = /the client in host B kept its one TCP connection to 127\.100\.0\.10:7071 all along: it heard (\d+) counts, (\d+) before the migration, (\d+) now/.exec(out);
    assert.ok(client, out);
    const [heardBefore, heardNow] = [Number(client[2]), Number(client[3])];
    assert.ok(heardBefore <= Number(counting[1]), `before the migration the client heard ${heardBefore}, the counter stood at ${counting[1]}`);
    assert.ok(heardNow > Number(counting[2]), `the client hears ${heardNow}, not the count the counter reached in host B (${counting[2]})`);
    const html = fs.readFileSync(reportFile, "utf8");
    assert.match(html, /<svg id="timeline"/);
    assert.match(html, /switch-over/);
    // The page as a person sees it: headless Chromium draws the timeline's bars.
    assert.match(html, /<svg id="downtime"/);
    const shot = screenshot(reportFile, 1000, 1200); // tall enough for the downtime's steps below the timeline
    assert.ok(countColour(shot, "#dd3333") >= 40, "the downtime bar (red) is drawn");
    assert.ok(countColour(shot, "#dd6633") + countColour(shot, "#3377cc") + countColour(shot, "#33aa77") >= 200, "the phase bars are drawn");
    assert.ok(countColour(shot, "#3377cc", 10) + countColour(shot, "#cc7700", 10) >= 20, "the bytes and faults curves are drawn");
    // the downtime's steps: a bar at least 2 px wide and 14 high for each, purple at the source, teal at the destination
    assert.ok(countColour(shot, "#8844bb", 10) >= 5 * 28, "the source's steps of the downtime are drawn");
    assert.ok(countColour(shot, "#11aaaa", 10) >= 5 * 28, "the destination's steps of the downtime are drawn");
    const netns = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
    assert.ok(!netns.includes(`ferry-hA-${child.pid}-`), `the demo's namespaces are gone: ${netns}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
