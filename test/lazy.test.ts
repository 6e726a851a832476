/**
 * Lazy (post-copy) migration between two hosts (network + PID + mount namespaces joined by a
 * veth, MTU 1500): the process runs at the destination before its memory has arrived, and
 * checks itself afterwards.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { execFileSync } from "node:child_process";
import path from "node:path";
import type { TwoHosts } from "../src/hosts/hosts.js";
import type { LazySummary } from "../src/lazy/stats.js";
import { finishVictim, buildVictim } from "./harness/victims.js";
import { lastJson, startFerryIn, startLazyRestore, startLazySource, startVictimIn, stateOf, withHosts } from "./harness/hosts.js";
import { ferry, tempDir } from "./harness/ferry.js";
import { redisClientIn } from "./harness/redisClient.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
let port = 7100 + (process.pid % 500);
const nextPort = () => port++;

interface SourceSummary {
  delivered: boolean;
  reason?: string;
  pagesTotal: number;
  pagesSent: number;
  faultRequests: number;
}

const keyDir = tempDir("ferry-key-");
after(() => fs.rmSync(keyDir, { recursive: true, force: true }));

test("build the lazy victims; one key for both hosts (`ferry keygen`, found through $FERRY_KEY)", async () => {
  process.env.FERRY_KEY = path.join(keyDir, "key");
  const k = await ferry(["keygen"]);
  assert.equal(k.code, 0, k.stderr);
  await Promise.all(["lazy_sweep", "lazy_events"].map((n) => buildVictim(n)));
});

test("lazy migration of a victim sweeping 64 MiB: it runs at the destination before its memory arrived, then passes", async () => {
  await withHosts(async (hosts, images) => {
    const v = await startVictimIn(hosts.a, "lazy_sweep", ["64"]);
    const listen = `127.100.0.1:${nextPort()}`;
    const src = await startLazySource(hosts, v.pid, images, listen);
    const { run: dst, pid } = await startLazyRestore(hosts, images, ["--page-server", listen, "--json"]);
    await sleep(300); // it sweeps, faulting on what has not arrived
    assert.equal(await finishVictim(pid, v.resultFile), "PASS");
    const dstRun = await dst.done;
    assert.equal(dstRun.code, 0, dstRun.stderr);
    const { lazy } = lastJson<{ lazy: LazySummary }>(dstRun);
    const srcRun = await src.done;
    assert.equal(srcRun.code, 0, srcRun.stderr);
    const source = lastJson<SourceSummary>(srcRun);

    assert.equal(lazy.outcome, "complete");
    assert.equal(source.delivered, true);
    assert.ok(lazy.pages >= 64 * 256, `all 64 MiB were lazy (${lazy.pages} pages)`);
    assert.equal(lazy.pagesByFault + lazy.pagesPushed, lazy.pages, "every page arrived once, asked for or pushed");
    assert.ok(lazy.faults > 0 && lazy.faultLatencyUs.p50 !== null, "the process faulted on missing pages");
    const stages = lazy.faultStagesUs;
    assert.ok(stages.sentToReply.count > 0 && stages.sentToReply.count <= lazy.faults, `${stages.sentToReply.count} requests timed for ${lazy.faults} faults`);
    assert.equal(stages.replyToCopied.count, stages.sentToReply.count, "every timed reply was timed until its UFFDIO_COPY");
    assert.ok(stages.pollToSent.count <= stages.sentToReply.count && stages.bulkFrame.count > 0, JSON.stringify(stages));
    assert.ok(lazy.bytesBeforeRestore < 200_000, `images before the restore: ${lazy.bytesBeforeRestore} bytes`);
    assert.equal(stateOf(v.rootPid), null, "the source copy is gone once the destination holds every page");
    process.stderr.write(`# lazy 64 MiB: ${JSON.stringify({ downtimeMs: lazy.downtimeMs, bytesBeforeRestore: lazy.bytesBeforeRestore, faults: lazy.faults, faultLatencyUs: lazy.faultLatencyUs, allPagesMs: lazy.allPagesMs, mbPerS: lazy.mbPerS })}\n`);
  });
});

test("split form, --insecure on loopback addresses: `ferry lazy-pages` and `ferry restore --lazy` find each other through a socket in the images directory", async () => {
  await withHosts(async (hosts, images) => {
    const v = await startVictimIn(hosts.a, "lazy_sweep", ["16"]);
    const listen = `127.100.0.1:${nextPort()}`;
    const src = await startLazySource(hosts, v.pid, images, listen, ["--insecure"]);
    const daemon = startFerryIn(hosts.b, ["lazy-pages", "-D", images, "--page-server", listen, "--json", "--insecure"], { statusFd: true });
    await daemon.ready;
    assert.ok(fs.existsSync(path.join(images, "lazy-pages.sock")));
    const { run: restore, pid } = await startLazyRestore(hosts, images, []);
    const d = await daemon.done;
    assert.equal(d.code, 0, d.stderr);
    const summary = lastJson<LazySummary>(d);
    assert.equal(summary.outcome, "complete");
    assert.equal(summary.pagesByFault + summary.pagesPushed, summary.pages);
    assert.ok(!fs.existsSync(path.join(images, "lazy-pages.sock")), "the daemon removed its socket");
    assert.equal(await finishVictim(pid, v.resultFile), "PASS");
    assert.equal((await restore.done).code, 0);
    assert.equal((await src.done).code, 0);
  });
});

test("mremap, MADV_DONTNEED, munmap and fork while pages are still missing: each handled exactly", async () => {
  await withHosts(async (hosts, images) => {
    const v = await startVictimIn(hosts.a, "lazy_events");
    const listen = `127.100.0.1:${nextPort()}`;
    const src = await startLazySource(hosts, v.pid, images, listen);
    // a slow background stream, so that the events surely meet missing pages
    const { run: dst, pid } = await startLazyRestore(hosts, images, ["--page-server", listen, "--max-rate", "8", "--json"]);
    process.kill(pid, "SIGUSR1");
    for (let i = 0; i < 2000 && !fs.existsSync(`${v.resultFile}.events`); i++) await sleep(5);
    assert.ok(fs.existsSync(`${v.resultFile}.events`), "the victim did its mremap, madvise, munmap and fork");
    assert.equal(await finishVictim(pid, v.resultFile, 20_000), "PASS");
    const run = await dst.done;
    assert.equal(run.code, 0, run.stderr);
    const { lazy } = lastJson<{ lazy: LazySummary }>(run);
    assert.equal(lazy.outcome, "complete");
    assert.ok(lazy.events.remap >= 1, "mremap seen");
    assert.ok(lazy.events.remove >= 1, "MADV_DONTNEED seen");
    assert.ok(lazy.events.unmap >= 1, "munmap seen");
    assert.ok(lazy.events.fork >= 1, "fork seen");
    assert.ok(lazy.droppedPages >= 512, `the 2 MiB the process zapped and the 2 MiB it unmapped were not fetched (dropped ${lazy.droppedPages})`);
    assert.equal((await src.done).code, 0);
  });
});

test("the source dies half way: the destination process is killed with a clear message and never runs on missing memory; the source's frozen copy can be resumed", async () => {
  await withHosts(async (hosts, images) => {
    const v = await startVictimIn(hosts.a, "lazy_sweep", ["64"]);
    const listen = `127.100.0.1:${nextPort()}`;
    const src = await startLazySource(hosts, v.pid, images, listen);
    const { run: dst, pid } = await startLazyRestore(hosts, images, ["--page-server", listen, "--max-rate", "4", "--retry-for", "1", "--json"]);
    await sleep(400); // the victim runs, faulting; the stream is far from done
    process.kill(src.ferryPid()!, "SIGKILL");
    const t0 = Date.now();
    const run = await dst.done;
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /page server .* unreachable.*killed process \d+ \(\d+ pages never arrived; it never ran on missing memory\)/);
    assert.equal(run.stderr.trim().split("\n").filter((l) => l.startsWith("ferry:")).length, 1, `one error line: ${run.stderr}`);
    assert.ok(Date.now() - t0 < 8000, "killed within the retry window (plus detection)");
    assert.equal(stateOf(pid), null, "the destination process is gone");
    assert.ok(!fs.existsSync(v.resultFile), "the victim never saw a wrong page (it would have written FAIL at once)");
    // the source copy stayed frozen; `ferry resume` lets it run where it was
    assert.equal(stateOf(v.rootPid), "T", "the source copy stays frozen");
    const resume = startFerryIn(hosts.a, ["resume", String(v.pid)]);
    assert.equal((await resume.done).code, 0);
    assert.equal(await finishVictim(v.rootPid, v.resultFile), "PASS");
  });
});

test("the link goes down for 6 s half way: the process waits (never reads zeros), the daemon reconnects and the transfer completes", async () => {
  await withHosts(async (hosts, images) => {
    const v = await startVictimIn(hosts.a, "lazy_sweep", ["64"]);
    const listen = `127.100.0.1:${nextPort()}`;
    const src = await startLazySource(hosts, v.pid, images, listen);
    const { run: dst, pid } = await startLazyRestore(hosts, images, ["--page-server", listen, "--max-rate", "8", "--retry-for", "20", "--json"]);
    await sleep(300);
    execFileSync("ip", ["-n", hosts.b.netns, "link", "set", "vB", "down"]);
    await sleep(6000); // longer than the daemon's 4 s of tolerated silence: it must reconnect
    execFileSync("ip", ["-n", hosts.b.netns, "link", "set", "vB", "up"]);
    assert.ok(!fs.existsSync(v.resultFile), "the victim never saw a wrong page while the link was down");
    assert.equal((await src.done).code, 0, "the source delivered every page");
    assert.equal(await finishVictim(pid, v.resultFile), "PASS");
    const run = await dst.done;
    assert.equal(run.code, 0, run.stderr);
    const { lazy } = lastJson<{ lazy: LazySummary }>(run);
    assert.equal(lazy.outcome, "complete");
    assert.ok(lazy.reconnects >= 1, `reconnected (${lazy.reconnects})`);
    assert.match(run.stderr, /lost the page server .*faulting threads wait/);
  });
});

test("the lazy-pages daemon itself is killed half way: its guard kills the process before the kernel could fill missing pages with zeros", async () => {
  await withHosts(async (hosts, images) => {
    const v = await startVictimIn(hosts.a, "lazy_sweep", ["64"]);
    const listen = `127.100.0.1:${nextPort()}`;
    const src = await startLazySource(hosts, v.pid, images, listen, ["--retry-for", "1"]);
    const daemon = startFerryIn(hosts.b, ["lazy-pages", "-D", images, "--page-server", listen, "--max-rate", "4"], { statusFd: true });
    await daemon.ready;
    const { run: restore, pid } = await startLazyRestore(hosts, images, []);
    await sleep(400);
    process.kill(daemon.ferryPid()!, "SIGKILL");
    const r = await restore.done;
    assert.equal(r.code, 137, "the restored process was SIGKILLed");
    assert.equal(stateOf(pid), null);
    assert.ok(!fs.existsSync(v.resultFile), "the victim never saw a wrong page");
    const s = await src.done;
    assert.equal(s.code, 1, "the source did not deliver");
    assert.equal(stateOf(v.rootPid), "T", "the source copy stays frozen");
  });
});

test("lazy images refuse a plain restore", async () => {
  await withHosts(async (hosts, images) => {
    const v = await startVictimIn(hosts.a, "lazy_sweep", ["1"]);
    const listen = `127.100.0.1:${nextPort()}`;
    const src = await startLazySource(hosts, v.pid, images, listen, ["--retry-for", "1"]);
    const plain = startFerryIn(hosts.b, ["restore", "-D", images]);
    const r = await plain.done;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /lazy images .*--lazy/);
    process.kill(src.ferryPid()!, "SIGTERM"); // the source stops serving, leaves the process frozen
    const s = await src.done;
    assert.equal(s.code, 1);
    assert.match(s.stderr, /kept frozen here: `ferry resume \d+`/);
    assert.equal(stateOf(v.rootPid), "T");
  });
});

/** The root PID of the one process called `comm` in `host` (null when there is none). */
function processIn(host: TwoHosts["a"], comm: string): number | null {
  for (const e of fs.readdirSync("/proc")) {
    const p = Number(e);
    try {
      if (p && host.localPid(p) !== null && fs.readFileSync(`/proc/${p}/comm`, "utf8").trim() === comm) return p;
    } catch { /* gone */ }
  }
  return null;
}

test("redis-server migrated lazily: keys written before are read after, through a connection opened before (its address moves with it)", async () => {
  assert.ok(fs.existsSync("/usr/bin/redis-server"), "redis-server is missing: run `bash scripts/install-system-deps.sh redis`");
  await withHosts(async (hosts, images) => {
    // The service address lives on host A's veth; after the dump it moves to host B, as a
    // migrated service's address does: the client (in host B) talks to it across the veth first.
    const service = "127.100.0.10", port = 6400;
    execFileSync("ip", ["-n", hosts.a.netns, "addr", "add", `${service}/32`, "dev", "vA"]);
    const dir = path.dirname(images);
    hosts.a.skipPidsTo(1000);
    const starter = hosts.a.spawn(["setsid", "-f", "/usr/bin/redis-server", "--port", String(port), "--bind", "0.0.0.0",
      "--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no", "--dir", dir], { stdio: "ignore" });
    starter.on("error", () => {});
    let client = null;
    for (let i = 0; i < 200 && !client; i++) {
      client = await redisClientIn(hosts.b, service, port).catch(() => null);
      if (!client) await sleep(50);
    }
    assert.ok(client, "redis did not start listening in host A");
    try {
      assert.equal(await client.ask("SET", "alpha", "42"), "+OK");
      assert.equal(await client.ask("RPUSH", "list", "a", "b", "c"), ":3");
      assert.equal(await client.ask("FILL", "100000"), "+OK"); // ~15 MB of values: most of its memory travels lazily
      const rootPid = processIn(hosts.a, "redis-server");
      assert.ok(rootPid, "redis-server runs in host A");
      const pid = hosts.a.localPid(rootPid)!;
      const threads = fs.readdirSync(`/proc/${rootPid}/task`).length;
      assert.ok(threads > 1, "redis runs several threads");

      const listen = `127.100.0.1:${nextPort()}`;
      const src = await startLazySource(hosts, pid, images, listen);
      execFileSync("ip", ["-n", hosts.a.netns, "addr", "del", `${service}/32`, "dev", "vA"]);
      execFileSync("ip", ["-n", hosts.b.netns, "addr", "add", `${service}/32`, "dev", "lo"]);
      const { run: dst, pid: restored } = await startLazyRestore(hosts, images, ["--page-server", listen, "--json"]);

      // The same connection, opened before the dump, carries on; the values come lazily.
      assert.equal(await client.ask("GET", "alpha"), "42");
      assert.deepEqual(await client.ask("LRANGE", "list", "0", "-1"), ["a", "b", "c"]);
      assert.equal(await client.ask("GET", "key:77777"), "value:77777:".repeat(10));
      assert.equal(await client.ask("DBSIZE"), ":100002");
      assert.equal(await client.ask("SET", "beta", "after"), "+OK");
      // And the listener accepts new clients at its address in host B.
      const other = await redisClientIn(hosts.b, service, port);
      assert.equal(await other.ask("GET", "beta"), "after");
      other.close();
      assert.equal(fs.readdirSync(`/proc/${restored}/task`).length, threads, "every thread is back");

      const s = await src.done;
      assert.equal(s.code, 0, s.stderr);
      assert.deepEqual(await client.ask("SHUTDOWN", "NOSAVE"), { error: "the server closed the connection" });
      const run = await dst.done;
      assert.equal(run.code, 0, run.stderr);
      const { lazy } = lastJson<{ lazy: LazySummary }>(run);
      assert.equal(lazy.outcome, "complete");
      // jemalloc gives memory back (MADV_DONTNEED) while pages are missing: those are dropped, not fetched
      assert.equal(lazy.pagesByFault + lazy.pagesPushed + lazy.droppedPages, lazy.pages, "every page arrived once, asked for or pushed, or was given up by redis");
      assert.ok(lazy.pages * 4096 > 15e6, `redis's memory travelled lazily (${lazy.pages} pages)`);
      process.stderr.write(`# redis lazy: ${JSON.stringify({ downtimeMs: lazy.downtimeMs, bytesBeforeRestore: lazy.bytesBeforeRestore, pages: lazy.pages, faults: lazy.faults, faultLatencyUs: lazy.faultLatencyUs, allPagesMs: lazy.allPagesMs, droppedPages: lazy.droppedPages, events: lazy.events })}\n`);
    } finally {
      client.close();
    }
  });
});
