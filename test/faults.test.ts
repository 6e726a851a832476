/**
 * Faults during a one-command migration (`ferry agent` in hB, `ferry migrate` in hA), in each
 * phase: pre-copy rounds, the switch-over (images moving; the agent restoring), the lazy phase
 * after the resume. Injected: the veth brought down, `ferry migrate` SIGKILLed, `ferry agent`
 * SIGKILLed. Each fault is injected when ferry itself reports the phase (--phase-fd), never
 * after a guessed sleep.
 *
 * Whatever happens, the process must end up running on exactly one host with its memory intact
 * (migrate_hot checks every page itself), or on none with one clear line saying so and how to
 * resume it (then `ferry resume` must bring it back intact): never two copies, never zeros.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";
import type { TwoHosts } from "../src/hosts/hosts.js";
import { buildVictim, finishVictim } from "./harness/victims.js";
import { startFerryIn, startVictimIn, stateOf, withHosts, type FerryInHost, type HostVictim } from "./harness/hosts.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
let port = 7900 + (process.pid % 300);

interface Migration {
  hosts: TwoHosts;
  v: HostVictim;
  agent: FerryInHost;
  migrate: FerryInHost;
}

/** The agent in hB, the victim in hA, `ferry migrate` started; both report their phases. */
async function startMigration(hosts: TwoHosts, mode: string, o: { victim?: string[]; agent?: string[]; migrate?: string[] } = {}): Promise<Migration> {
  const v = await startVictimIn(hosts.a, "migrate_hot", o.victim ?? ["32", "4"]);
  const addr = `127.100.0.2:${port++}`;
  const agent = startFerryIn(hosts.b, ["agent", "--listen", addr, "--once", "--insecure", "--retry-for", "2", ...(o.agent ?? [])], { statusFd: true, phaseFd: true });
  await agent.ready;
  const migrate = startFerryIn(hosts.a, ["migrate", String(v.pid), "--to", addr, "--mode", mode, "--json", "--insecure", "--retry-for", "2", ...(o.migrate ?? [])], { phaseFd: true });
  return { hosts, v, agent, migrate };
}

const linkDown = (hosts: TwoHosts) => execFileSync("ip", ["-n", hosts.b.netns, "link", "set", "vB", "down"]);
const linkUp = (hosts: TwoHosts) => execFileSync("ip", ["-n", hosts.b.netns, "link", "set", "vB", "up"]);
const kill = (f: FerryInHost) => process.kill(f.ferryPid()!, "SIGKILL");

/** The one error line of a failed ferry command ("ferry: ..."). */
function errorLine(run: { stderr: string }): string {
  const lines = run.stderr.trim().split("\n").filter((l) => l.startsWith("ferry:"));
  assert.equal(lines.length, 1, `one error line: ${run.stderr}`);
  return lines[0];
}

/** A stopped task (T, t) or a dead one not yet reaped (Z, X) runs no code. */
const running = (state: string | null) => state !== null && !["T", "t", "Z", "X"].includes(state);

/** Where the process is, once both sides are done: never running on both hosts. */
function whereIsIt(m: Migration): { source: string | null; dest: number | null } {
  const source = stateOf(m.v.rootPid);
  const dest = m.hosts.b.rootPid(m.v.pid);
  const destState = dest ? stateOf(dest) : null;
  assert.ok(!(running(source) && running(destState)), `two copies: source ${source}, destination ${destState}`);
  return { source, dest: destState ? dest : null };
}

/** The source process runs as before the migration: not stopped, not traced, no write-protection left. */
function runsAsBefore(rootPid: number): void {
  const status = fs.readFileSync(`/proc/${rootPid}/status`, "utf8");
  assert.match(status, /^TracerPid:\s+0$/m, "not traced any more");
  assert.ok(running(stateOf(rootPid)), `runs (state ${stateOf(rootPid)})`);
  const flags = fs.readFileSync(`/proc/${rootPid}/smaps`, "utf8").split("\n").filter((l) => l.startsWith("VmFlags:"));
  assert.ok(flags.length > 0);
  assert.ok(!flags.some((l) => / (uw|um)\b/.test(l)), "no userfaultfd registration left (write-protect tracking gone)");
}

/** Wait until the source copy has left its stop (the resume guard acts when ferry is gone). */
async function untilRunning(rootPid: number): Promise<void> {
  for (let i = 0; i < 1000 && !running(stateOf(rootPid)); i++) await sleep(5);
}

/** `ferry migrate` ends with exit 1 and one error line matching `re`. */
async function migrateFails(m: Migration, re: RegExp): Promise<void> {
  const r = await m.migrate.done;
  assert.equal(r.code, 1, r.stderr);
  assert.match(errorLine(r), re);
}

/** The agent ends with exit 1 and one line saying why, matching `re`. */
async function agentFails(m: Migration, re: RegExp): Promise<void> {
  const a = await m.agent.done;
  assert.equal(a.code, 1, a.stderr);
  assert.equal(a.stderr.split("\n").filter((l) => l.includes("failed:")).length, 1, a.stderr);
  assert.match(a.stderr, re);
}

/** The source copy runs on, alone, as before the migration, with all of its memory. */
async function runsOnAtSource(m: Migration): Promise<void> {
  await untilRunning(m.v.rootPid);
  assert.equal(whereIsIt(m).dest, null, "nothing runs at the destination");
  runsAsBefore(m.v.rootPid);
  assert.equal(await finishVictim(m.v.rootPid, m.v.resultFile, 20_000), "PASS");
}

/** Nothing runs anywhere and the source keeps its frozen copy: `ferry resume` brings it back intact. */
async function resumeAtSource(m: Migration): Promise<void> {
  whereIsIt(m);
  assert.equal(stateOf(m.v.rootPid), "T", "the source copy is kept frozen");
  assert.equal(m.hosts.b.rootPid(m.v.pid), null, "nothing runs at the destination");
  const r = await startFerryIn(m.hosts.a, ["resume", String(m.v.pid)]).done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await finishVictim(m.v.rootPid, m.v.resultFile, 20_000), "PASS");
}

test("build the migration victim", async () => {
  await buildVictim("migrate_hot");
});

// ---------------------------------------------------------------- (a) pre-copy rounds

test("pre-copy, link down: both sides give up; the source runs on as before (unfrozen, untracked) with its memory intact", async () => {
  await withHosts(async (hosts) => {
    const m = await startMigration(hosts, "hybrid");
    await m.migrate.phase("precopy");
    linkDown(hosts);
    await migrateFails(m, /no word from the other side .*process \d+ runs on here as before/);
    await agentFails(m, /failed: the control connection ended .*nothing of it runs here/);
    await runsOnAtSource(m);
  });
});

test("pre-copy, `ferry migrate` SIGKILLed: the kernel drops its tracking; the source runs on as before; the agent says the source went away", async () => {
  await withHosts(async (hosts) => {
    const m = await startMigration(hosts, "hybrid");
    await m.migrate.phase("precopy");
    kill(m.migrate);
    await agentFails(m, /failed: the control connection ended .*nothing of it runs here/);
    await runsOnAtSource(m);
  });
});

test("pre-copy, `ferry agent` SIGKILLed: one line at the source, which runs on as before", async () => {
  await withHosts(async (hosts) => {
    const m = await startMigration(hosts, "precopy");
    await m.migrate.phase("precopy");
    kill(m.agent);
    await migrateFails(m, /control connection ended .*process \d+ runs on here as before/);
    await runsOnAtSource(m);
  });
});

// ---------------------------------------------------------------- (b) switch-over: the process frozen, its images moving

const STOP_COPY_BIG = { victim: ["96", "4"] }; // 100 MiB of images: they take a while to cross

test("switch-over (images moving), link down: the source, frozen, runs again there; nothing at the destination", async () => {
  await withHosts(async (hosts) => {
    const m = await startMigration(hosts, "stop-copy", STOP_COPY_BIG);
    await m.migrate.phase("images");
    linkDown(hosts);
    await migrateFails(m, /no word from the other side .*process \d+ runs on here/);
    assert.equal((await m.agent.done).code, 1);
    await runsOnAtSource(m);
  });
});

test("switch-over (images moving), `ferry migrate` SIGKILLed: its resume guard lets the frozen source run again", async () => {
  await withHosts(async (hosts) => {
    const m = await startMigration(hosts, "stop-copy", STOP_COPY_BIG);
    await m.migrate.phase("images");
    kill(m.migrate);
    await agentFails(m, /failed: the control connection ended .*nothing of it runs here/);
    await runsOnAtSource(m);
  });
});

test("switch-over (images moving), `ferry agent` SIGKILLed: the source runs again, one line says so", async () => {
  await withHosts(async (hosts) => {
    const m = await startMigration(hosts, "stop-copy", STOP_COPY_BIG);
    await m.migrate.phase("images");
    kill(m.agent);
    await migrateFails(m, /control connection ended .*process \d+ runs on here/);
    await runsOnAtSource(m);
  });
});

// ---------------------------------------------------------------- (b) switch-over: the agent restoring

test("switch-over (agent restoring), link down: the destination runs it; the source cannot know, keeps its copy frozen and says so", async () => {
  await withHosts(async (hosts) => {
    const m = await startMigration(hosts, "stop-copy");
    await m.agent.phase("restore");
    linkDown(hosts);
    const a = await m.agent.done;
    assert.equal(a.code, 0, a.stderr);
    await migrateFails(m, /after the switch-over: process \d+ may run at the destination, so it is kept frozen here: `ferry resume \d+`/);
    const where = whereIsIt(m);
    assert.equal(where.source, "T");
    assert.ok(where.dest, "it runs at the destination");
    assert.equal(await finishVictim(where.dest, m.v.resultFile, 20_000), "PASS");
  });
});

test("switch-over (agent restoring), `ferry agent` SIGKILLed: nothing half-restored survives it; the source keeps its copy frozen, `ferry resume` brings it back", async () => {
  await withHosts(async (hosts) => {
    const m = await startMigration(hosts, "lazy");
    await m.agent.phase("restore");
    kill(m.agent);
    await migrateFails(m, /control connection ended .*after the switch-over: process \d+ may run at the destination, so it is kept frozen here/);
    await sleep(100); // the guard or EXITKILL has done its work by now; a copy there would show
    await resumeAtSource(m);
  });
});

test("switch-over (agent restoring), `ferry migrate` SIGKILLed: the destination cannot reach the page server and kills its copy; the source stays frozen for `ferry resume`", async () => {
  await withHosts(async (hosts) => {
    const m = await startMigration(hosts, "hybrid");
    await m.agent.phase("restore");
    kill(m.migrate);
    // killed before the agent reached the page server (nothing restored), or after (its copy killed)
    await agentFails(m, /failed: .*(nothing of it runs here|killed process \d+ .*never ran on missing memory)/);
    await resumeAtSource(m);
  });
});

// ---------------------------------------------------------------- (c) lazy phase: the process runs at the destination

const SLOW_LAZY = { agent: ["--max-rate", "4"] }; // 36 MiB at 4 MB/s: the lazy phase lasts ~9 s

test("lazy phase, link down for good: the destination kills its copy after --retry-for (never on zeros); the source keeps its copy frozen; `ferry resume` brings it back", async () => {
  await withHosts(async (hosts) => {
    const m = await startMigration(hosts, "lazy", SLOW_LAZY);
    await m.migrate.phase("lazy");
    await sleep(200); // it runs there, faulting
    linkDown(hosts);
    await agentFails(m, /killed process \d+ \(\d+ pages never arrived; it never ran on missing memory\)/);
    await migrateFails(m, /did not come back within 2 s; process \d+ is kept frozen here: `ferry resume \d+`/);
    assert.ok(!fs.existsSync(m.v.resultFile), "the victim never saw a wrong page at the destination");
    linkUp(hosts);
    await resumeAtSource(m);
  });
});

test("lazy phase, `ferry migrate` SIGKILLed: the page server is gone, the destination kills its copy; the source stays frozen for `ferry resume`", async () => {
  await withHosts(async (hosts) => {
    const m = await startMigration(hosts, "hybrid", { agent: ["--max-rate", "1"], migrate: ["--max-downtime", "1"] });
    await m.migrate.phase("lazy");
    kill(m.migrate);
    await agentFails(m, /failed: .*killed process \d+ .*never ran on missing memory.*`ferry resume \d+`/);
    assert.ok(!fs.existsSync(m.v.resultFile), "the victim never saw a wrong page at the destination");
    await resumeAtSource(m);
  });
});

test("lazy phase, `ferry agent` SIGKILLed: its guard kills the process before a missing page could read as zeros; the source stays frozen for `ferry resume`", async () => {
  await withHosts(async (hosts) => {
    const m = await startMigration(hosts, "lazy", SLOW_LAZY);
    await m.migrate.phase("lazy");
    await sleep(200);
    kill(m.agent);
    await migrateFails(m, /process \d+ is kept frozen here: `ferry resume \d+`/);
    assert.ok(!fs.existsSync(m.v.resultFile), "the victim never saw a wrong page at the destination");
    await resumeAtSource(m);
  });
});

test("lazy phase, `ferry agent` stopped (SIGTERM): it kills its copy and says so; the source, told, runs on by itself", async () => {
  await withHosts(async (hosts) => {
    const m = await startMigration(hosts, "lazy", SLOW_LAZY);
    await m.migrate.phase("lazy");
    await sleep(200);
    process.kill(m.agent.ferryPid()!, "SIGTERM");
    await migrateFails(m, /the destination gave up the lazy transfer .*interrupted by SIGTERM.*process \d+ runs on here/);
    await m.agent.done;
    await runsOnAtSource(m);
  });
});

// ---------------------------------------------------------------- (d) pre-copy's install after the resume

const TAMPER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "harness/tamperControl.js");

/**
 * A pre-copy migration of migrate_hot whose control connection goes through a proxy in hB that
 * changes what the source says (test/harness/tamperControl.ts, MODE).
 */
async function tamperedPrecopy(hosts: TwoHosts, mode: "cut-keep" | "drop-pages"): Promise<Migration & { proxySaid: () => string }> {
  const v = await startVictimIn(hosts.a, "migrate_hot", ["32", "4"]);
  const agentAddr = `127.100.0.2:${port++}`;
  const agent = startFerryIn(hosts.b, ["agent", "--listen", agentAddr, "--once", "--insecure"], { statusFd: true });
  await agent.ready;
  const listen = port++;
  const proxy = hosts.b.spawn([process.execPath, TAMPER, mode, "127.100.0.2", String(listen), ...agentAddr.split(":")], { stdio: ["ignore", "pipe", "inherit"] });
  let said = "";
  await new Promise<void>((resolve, reject) => {
    proxy.stdout!.on("data", (d) => {
      said += d;
      if (said.includes("listening\n")) resolve();
    });
    proxy.on("close", () => reject(new Error(`the proxy ended: ${said}`)));
  });
  const migrate = startFerryIn(hosts.a, ["migrate", String(v.pid), "--to", `127.100.0.2:${listen}`, "--mode", "precopy", "--json", "--insecure"]);
  return { hosts, v, agent, migrate, proxySaid: () => said };
}

test("pre-copy, a page neither held by the agent nor zero (RESTORE's keep ranges cut in transit): the destination kills its copy with one clear line, never on zeros; the source, told, runs on with its memory intact", async () => {
  await withHosts(async (hosts) => {
    const m = await tamperedPrecopy(hosts, "cut-keep");
    await migrateFails(m, /the destination could not install the pre-copied pages \(\d+ page\(s\) at 0x[0-9a-f]+ are neither held here nor zero, and there is no page server to ask .*killed process \d+ \(\d+ pages never arrived; it never ran on missing memory\)\): process \d+ runs on here/);
    await agentFails(m, /failed: \d+ page\(s\) at 0x[0-9a-f]+ are neither held here nor zero.*killed process \d+/);
    const taken = /RESTORE: (\d+) of (\d+) kept pages taken out/.exec(m.proxySaid());
    assert.ok(taken && Number(taken[1]) > 0 && Number(taken[2]) >= 9 * 1024, `the agent was told it holds fewer pages than it should: ${m.proxySaid()}`);
    assert.ok(!fs.existsSync(m.v.resultFile), "the victim never saw a wrong page at the destination");
    await runsOnAtSource(m);
  });
});

test("pre-copy, pages the agent is told it holds but never received (a PAGES frame of the rounds lost in transit): the destination kills its copy with one clear line; the source, told, runs on with its memory intact", async () => {
  await withHosts(async (hosts) => {
    const m = await tamperedPrecopy(hosts, "drop-pages");
    await migrateFails(m, /the destination could not install the pre-copied pages \(the source said the page at 0x[0-9a-f]+ is here, but no round brought it: killed process \d+ \(\d+ pages never arrived; it never ran on missing memory\)\): process \d+ runs on here/);
    await agentFails(m, /failed: the source said the page at 0x[0-9a-f]+ is here, but no round brought it: killed process \d+/);
    assert.match(m.proxySaid(), /dropped 256 pages at 0x[0-9a-f]+/);
    assert.ok(!fs.existsSync(m.v.resultFile), "the victim never saw a wrong page at the destination");
    await runsOnAtSource(m);
  });
});
