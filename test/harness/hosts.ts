/**
 * Test helpers for the two-host harness (src/hosts/hosts.ts): start victims and ferry commands
 * inside a host, find their PIDs from outside.
 *
 *   await withHosts(async (hosts, images) => {          // hA, hB; all removed afterwards
 *     const v = await startVictimIn(hosts.a, "lazy_sweep", ["64"]);
 *     const src = await startLazySource(hosts, v.pid, images, listen);
 *     const { run, pid } = await startLazyRestore(hosts, images, ["--page-server", listen]);
 *   });
 */
import fs from "node:fs";
import path from "node:path";
import type { ChildProcess } from "node:child_process";
import { createHosts, type Host, type TwoHosts } from "../../src/hosts/hosts.js";
import { processState } from "../../src/kernel/procfs.js";
import { buildVictim, isVictim } from "./victims.js";
import { FERRY_CLI, tempDir, type FerryRun } from "./ferry.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The temp dirs of the victims startVictimIn started in a host, for withHosts to remove. */
const victimDirs = new WeakMap<Host, string[]>();

/**
 * Two fresh hosts and an image directory path (not yet made, in a temp dir) for one test; both,
 * and the temp dirs of the victims started in them, go away afterwards, whatever happens.
 */
export async function withHosts(fn: (hosts: TwoHosts, images: string) => Promise<void>): Promise<void> {
  const hosts = createHosts();
  const dir = tempDir("ferry-hosts-");
  try {
    await fn(hosts, path.join(dir, "images"));
  } finally {
    hosts.destroy();
    for (const d of [dir, ...(victimDirs.get(hosts.a) ?? []), ...(victimDirs.get(hosts.b) ?? [])]) fs.rmSync(d, { recursive: true, force: true });
  }
}

export interface HostVictim {
  name: string;
  /** its PID inside the host */
  pid: number;
  /** its PID as this (root namespace) test sees it */
  rootPid: number;
  resultFile: string;
  dir: string;
}

/**
 * Start a victim inside `host`, detached from the command that started it (setsid -f: in its own
 * session, a child of the host's init, fds 0-2 on /dev/null), with a PID above `pidFloor` so that
 * it cannot collide with the other host's own processes. Resolves once RESULTFILE.ready exists.
 */
export async function startVictimIn(host: Host, name: string, args: string[] = [], pidFloor = 1000): Promise<HostVictim> {
  const binary = await buildVictim(name);
  const dir = fs.mkdtempSync(`/tmp/ferry-victim-${name}-`);
  victimDirs.set(host, [...(victimDirs.get(host) ?? []), dir]);
  fs.chmodSync(dir, 0o777);
  const resultFile = path.join(dir, "result");
  host.skipPidsTo(pidFloor);
  const starter = host.spawn(["setsid", "-f", binary, resultFile, ...args], { stdio: "ignore", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
  starter.on("error", () => {});
  const deadline = Date.now() + 10_000;
  while (!fs.existsSync(`${resultFile}.ready`)) {
    if (fs.existsSync(resultFile)) throw new Error(`victim ${name} failed its setup: ${fs.readFileSync(resultFile, "utf8").trim()}`);
    if (Date.now() > deadline) throw new Error(`victim ${name} did not become ready within 10 s`);
    await sleep(5);
  }
  const rootPid = findByResultFile(resultFile);
  if (!rootPid) throw new Error(`victim ${name} is ready but not running`);
  return { name, pid: host.localPid(rootPid)!, rootPid, resultFile, dir };
}

/** The root PID of the victim that writes `resultFile`, wherever it runs. */
function findByResultFile(resultFile: string): number | null {
  for (const e of fs.readdirSync("/proc")) {
    const p = Number(e);
    if (p && isVictim(p, resultFile)) return p;
  }
  return null;
}

export interface FerryInHost {
  /** the nsenter process; ferry itself is its only child */
  child: ChildProcess;
  /** resolves on the --status-fd byte (with statusFd: true), rejects if ferry ends first */
  ready: Promise<void>;
  done: Promise<FerryRun>;
  /** ferry's own PID (root namespace), to signal it */
  ferryPid(): number | null;
  /** with phaseFd: true, the lines of --phase-fd so far */
  phases: string[];
  /** resolves when a --phase-fd line starting with `prefix` arrives; rejects if ferry ends first */
  phase(prefix: string): Promise<void>;
}

/** Run `ferry ARGS` inside a host, like startFerry() does on this one. */
export function startFerryIn(host: Host, args: string[], opts: { statusFd?: boolean; phaseFd?: boolean; timeoutMs?: number } = {}): FerryInHost {
  const ferryPid = (): number | null => {
    try {
      const kids = fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim();
      return kids ? Number(kids.split(" ")[0]) : null;
    } catch {
      return null;
    }
  };
  const fullArgs = [...args, ...(opts.statusFd ? ["--status-fd", "3"] : []), ...(opts.phaseFd ? ["--phase-fd", "4"] : [])];
  const child = host.spawn([process.execPath, FERRY_CLI, ...fullArgs], { stdio: ["ignore", "pipe", "pipe", opts.statusFd ? "pipe" : "ignore", opts.phaseFd ? "pipe" : "ignore"] });
  const phases: string[] = [];
  const phaseWaiters: { prefix: string; resolve: () => void }[] = [];
  let partial = "";
  (child.stdio[4] as NodeJS.ReadableStream | null)?.on("data", (d: Buffer) => {
    const lines = (partial + d.toString()).split("\n");
    partial = lines.pop()!;
    for (const line of lines) {
      phases.push(line);
      for (const w of phaseWaiters.filter((x) => line.startsWith(x.prefix))) {
        phaseWaiters.splice(phaseWaiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  let stdout = "", stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  // on timeout, ferry itself too: killing nsenter alone leaves it running (and our pipes open)
  const timer = setTimeout(() => {
    const pid = ferryPid();
    if (pid) process.kill(pid, "SIGKILL");
    child.kill("SIGKILL");
  }, opts.timeoutMs ?? 60_000);
  const done = new Promise<FerryRun>((resolve) => {
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  const ready = new Promise<void>((resolve, reject) => {
    if (!opts.statusFd) return resolve();
    (child.stdio[3] as NodeJS.ReadableStream).once("data", () => resolve());
    done.then((r) => reject(new Error(`ferry ${args.join(" ")} in ${host.name} ended (code ${r.code}) before it was ready: ${r.stderr.trim()}`)));
  });
  ready.catch(() => {});
  const phase = (prefix: string) => new Promise<void>((resolve, reject) => {
    if (phases.some((l) => l.startsWith(prefix))) return resolve();
    phaseWaiters.push({ prefix, resolve });
    done.then((r) => reject(new Error(`ferry ${args.join(" ")} in ${host.name} ended (code ${r.code}) before phase ${prefix}; phases: ${phases.join(", ")}; ${r.stderr.trim()}`)));
  });
  return { child, ready, done, ferryPid, phases, phase };
}

/** The last line of a command's stdout, parsed as JSON. */
export function lastJson<T>(run: FerryRun): T {
  const lines = run.stdout.trim().split("\n").filter(Boolean);
  if (!lines.length) throw new Error(`no JSON on stdout; stderr: ${run.stderr.trim()}`);
  return JSON.parse(lines[lines.length - 1]) as T;
}

/** The state letter of a process (R, S, T...) or null when it is gone or a zombie. */
export function stateOf(rootPid: number): string | null {
  const st = processState(rootPid);
  return st === "Z" ? null : st;
}

/** `ferry dump --lazy --json` of process `pid` of hA, serving its pages at `listen`; resolves once it serves. */
export async function startLazySource(hosts: TwoHosts, pid: number, images: string, listen: string, extra: string[] = []): Promise<FerryInHost> {
  const src = startFerryIn(hosts.a, ["dump", String(pid), "-D", images, "--lazy", "--listen", listen, "--json", ...extra], { statusFd: true });
  await src.ready;
  return src;
}

/**
 * `ferry restore --lazy --pidfile IMAGES.pid ARGS` in hB (ARGS: `--page-server` for the one-process
 * form, nothing when a `ferry lazy-pages` daemon serves it); resolves once the process runs, with
 * its root PID read from the pidfile.
 */
export async function startLazyRestore(hosts: TwoHosts, images: string, args: string[]): Promise<{ run: FerryInHost; pid: number }> {
  const pidfile = `${images}.pid`;
  const run = startFerryIn(hosts.b, ["restore", "-D", images, "--lazy", "--pidfile", pidfile, ...args], { statusFd: true });
  await run.ready;
  for (let i = 0; i < 2000 && !fs.existsSync(pidfile); i++) await sleep(5);
  const pid = hosts.b.rootPid(Number(fs.readFileSync(pidfile, "utf8")));
  if (!pid) throw new Error(`the restored process (${pidfile}) does not run in ${hosts.b.name}`);
  return { run, pid };
}
