import { spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { FerryError } from "../errors.js";
import { createHosts, type Host, type TwoHosts } from "../hosts/hosts.js";
import type { MigrateSummary } from "../migrate/summary.js";
import { readStatus, workloadBinary, type WorkloadStatus } from "./workload.js";

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), "../cli/main.js");
const PORT = 7070;
/** the counter's service address: on host A's veth first, moved to host B with the counter */
const SERVICE = "127.100.0.10";
const SERVICE_PORT = 7071;
/**
 * The action script both ferry commands run (CRIU's CRTOOLS_SCRIPT_ACTION): once the counter is
 * frozen in A, its address leaves A (the client's segments are then lost on the way, never
 * answered with a reset, and TCP sends them again); once it runs in B, the address is B's.
 */
const ACTION_SCRIPT = `#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
case "$CRTOOLS_SCRIPT_ACTION" in
  post-dump) exec ip addr del ${SERVICE}/32 dev vA ;;
  post-restore) exec ip addr add ${SERVICE}/32 dev vB ;;
esac
`;
/** The client in host B: prints every line the counter sends on its one connection, then how it ended. */
const CLIENT = `const s = require("net").connect(${SERVICE_PORT}, "${SERVICE}"); let b = "";
s.setEncoding("utf8");
s.on("data", (d) => { b += d; let i; while ((i = b.indexOf("\\n")) >= 0) { process.stdout.write(b.slice(0, i + 1)); b = b.slice(i + 1); } });
s.on("error", (e) => process.stdout.write("error " + e.code + "\\n"));
s.on("close", () => { process.stdout.write("closed\\n"); process.exit(0); });`;

export interface DemoOptions {
  mode?: string;
  report: string;
  out?: NodeJS.WriteStream;
  signal?: AbortSignal;
}

export interface DemoResult {
  before: WorkloadStatus;
  after: WorkloadStatus;
  summary: MigrateSummary;
  report: string;
}

/** What the demo needs from the system, checked before anything is created. */
export function checkDemoNeeds(): void {
  if (process.getuid?.() !== 0) throw new FerryError("FERRY_DEMO", "ferry demo needs root (it creates network and PID namespaces): run it with sudo");
  for (const tool of ["ip", "unshare", "nsenter", "gcc"]) {
    const r = spawnSync(tool, ["--version"], { stdio: "ignore" });
    if (r.error) {
      throw new FerryError("FERRY_DEMO", `ferry demo needs \`${tool}\`, which is missing: run \`sudo scripts/install-system-deps.sh\` (iproute2, util-linux, gcc), then try again`);
    }
  }
}

/**
 * `ferry demo`: two hosts on this machine (network + PID + mount namespaces joined by a veth),
 * a counter running in host A, `ferry agent` in host B, then `ferry migrate` of the counter
 * from A to B while it runs. Shows that it kept counting with its memory intact, writes the
 * report, and removes everything it made on every path (Ctrl-C included).
 */
export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const out = opts.out ?? process.stderr;
  const say = (line: string) => out.write(`${line}\n`);
  checkDemoNeeds();
  const bin = workloadBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-demo-"));
  fs.chmodSync(dir, 0o755);
  const status = path.join(dir, "status");
  const children: ChildProcess[] = [];
  const removeDir = () => fs.rmSync(dir, { recursive: true, force: true });
  process.once("exit", removeDir);
  let hosts: TwoHosts | null = null;
  try {
    say("ferry demo: creating two hosts, A (127.100.0.1) and B (127.100.0.2), joined by a veth (MTU 1500)");
    hosts = createHosts();
    hosts.a.skipPidsTo(1000);
    hosts.b.skipPidsTo(2000); // B's own processes stay clear of the PID the counter brings along
    hosts.a.run(["ip", "addr", "add", `${SERVICE}/32`, "dev", "vA"]);
    const script = path.join(dir, "action.sh");
    fs.writeFileSync(script, ACTION_SCRIPT, { mode: 0o755 });
    start(hosts.a, ["setsid", "-f", bin, status, SERVICE, String(SERVICE_PORT)], children);
    const first = await waitFor(() => readStatus(status), 5000, "the counter did not start");
    const localPid = findPid(hosts.a, bin);
    say(`ferry demo: host A runs a counter (PID ${localPid}, 52 MiB, rewriting 4 MiB all the time) serving its count on ${SERVICE}:${SERVICE_PORT}: count ${first.count}`);
    const client = new ClientView(start(hosts.b, [process.execPath, "-e", CLIENT], children, "pipe"));
    await waitFor(() => client.counts.length >= 3 || client.ended, 5000, "the client in host B hears nothing from the counter");
    if (client.ended) throw new FerryError("FERRY_DEMO", `the client in host B could not talk to the counter: ${client.ended}`);
    say(`ferry demo: a client in host B (127.100.0.2) is connected to it over TCP and hears count ${client.counts.at(-1)}`);
    await showCounting(status, 3, say, "A");
    const agent = start(hosts.b, [process.execPath, CLI, "agent", "--listen", `127.100.0.2:${PORT}`, "--once", "--insecure", "--action-script", script], children, "pipe");
    await waitFor(() => portOpen(hosts!.b, PORT), 10_000, "the agent in host B did not start listening");
    say(`ferry demo: host B runs \`ferry agent --listen 127.100.0.2:${PORT}\``);
    const before = readStatus(status)!;
    const mode = opts.mode ?? "hybrid";
    say(`ferry demo: ferry migrate ${localPid} --to 127.100.0.2:${PORT} --mode ${mode}   (count ${before.count}, memory checksum ${before.checksum})`);
    const heardBefore = client.counts.length;
    const migrate = start(hosts.a, [
      process.execPath, CLI, "migrate", String(localPid), "--to", `127.100.0.2:${PORT}`, "--mode", mode, "--insecure", "--json", "--report", opts.report, "--action-script", script,
    ], children, "pipe", out.isTTY);
    const [m] = await Promise.all([finished(migrate), finished(agent)]);
    if (m.code !== 0) throw new FerryError("FERRY_DEMO", `the migration failed: ${m.stderr.trim().split("\n").pop()}`);
    const summary = JSON.parse(m.stdout.trim().split("\n").pop()!) as MigrateSummary;
    const rootPid = hosts.b.rootPid(summary.restoredPid);
    if (!rootPid) throw new FerryError("FERRY_DEMO", "the counter does not run in host B after the migration");
    say(`ferry demo: migrated in ${summary.totalMs.toFixed(0)} ms, the counter stood still for ${summary.downtimeMs.toFixed(0)} ms; ${summary.rounds.length} pre-copy rounds, ${(summary.bytesSent / 1e6).toFixed(1)} MB sent, ${summary.faults} faults served`);
    const after = await showCounting(status, 3, say, "B", before.count);
    const leftInA = hosts.a.rootPid(localPid);
    if (leftInA !== null && exeOf(leftInA) === bin) throw new FerryError("FERRY_DEMO", "the counter still runs in host A");
    if (after.count <= before.count) throw new FerryError("FERRY_DEMO", `the counter went from ${before.count} to ${after.count}: it did not carry on`);
    if (after.checksum !== before.checksum) throw new FerryError("FERRY_DEMO", `the counter's memory changed: checksum ${before.checksum} before, ${after.checksum} after`);
    say(`ferry demo: PID ${summary.restoredPid} now runs in host B, kept counting (${before.count} → ${after.count}), memory checksum unchanged (${after.checksum})`);
    await waitFor(() => client.ended || (client.counts.at(-1) ?? 0) > after.count, 5000, "the client in host B hears no count from the counter after the migration");
    if (client.ended) throw new FerryError("FERRY_DEMO", `the client's connection ended: ${client.ended}`);
    const heard = client.counts;
    if (heard.some((c, i) => i > 0 && c <= heard[i - 1])) throw new FerryError("FERRY_DEMO", "the client heard the count go back");
    say(`ferry demo: the client in host B kept its one TCP connection to ${SERVICE}:${SERVICE_PORT} all along: it heard ${heard.length} counts, ${heard[heardBefore - 1]} before the migration, ${heard.at(-1)} now`);
    say(`ferry demo: report written to ${opts.report}`);
    return { before, after, summary, report: opts.report };
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    hosts?.destroy();
    removeDir();
    process.off("exit", removeDir);
  }
}

/** What the client in host B heard: the counts, and how its connection ended (if it did). */
class ClientView {
  readonly counts: number[] = [];
  ended: string | null = null;

  constructor(c: ChildProcess) {
    let pending = "";
    c.stdout!.setEncoding("utf8").on("data", (d: string) => {
      pending += d;
      let i;
      while ((i = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        if (/^\d+ /.test(line)) this.counts.push(Number(line.split(" ")[0]));
        else this.ended = line;
      }
    });
    c.on("close", () => (this.ended ??= "the client exited"));
  }
}

function start(host: Host, argv: string[], children: ChildProcess[], stdio: "ignore" | "pipe" = "ignore", inheritStderr = false): ChildProcess {
  const c = host.spawn(argv, { stdio: ["ignore", stdio, inheritStderr ? "inherit" : stdio], env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" } });
  c.on("error", () => {});
  children.push(c);
  return c;
}

function finished(c: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = "", stderr = "";
  c.stdout?.on("data", (d) => (stdout += d));
  c.stderr?.on("data", (d) => (stderr += d));
  return new Promise((resolve) => c.on("close", (code) => resolve({ code, stdout, stderr })));
}

async function waitFor<T>(probe: () => T | null | false, ms: number, what: string): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > until) throw new FerryError("FERRY_DEMO", what);
    await sleep(20);
  }
}

/** Print the counter a few times, 300 ms apart. */
async function showCounting(file: string, times: number, say: (l: string) => void, host: string, above = -1): Promise<WorkloadStatus> {
  let s = await waitFor(() => { const x = readStatus(file); return x && x.count > above ? x : null; }, 5000, `the counter does not count in host ${host}`);
  for (let i = 0; i < times; i++) {
    say(`    host ${host}: count ${s.count}`);
    await sleep(300);
    s = readStatus(file) ?? s;
  }
  return s;
}

/** The host-local PID of the process running `bin` in `host`. */
function findPid(host: Host, bin: string): number {
  for (const e of fs.readdirSync("/proc")) {
    const p = Number(e);
    if (!p || exeOf(p) !== bin) continue;
    const local = host.localPid(p);
    if (local) return local;
  }
  throw new FerryError("FERRY_DEMO", "the counter is not running");
}

/** The executable of a process (as the root namespace sees it), or null when it is gone. */
function exeOf(pid: number): string | null {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return null;
  }
}

function portOpen(host: Host, port: number): boolean {
  try {
    return host.run(["ss", "-Hltn", `sport = :${port}`]).trim().length > 0;
  } catch {
    return false;
  }
}
