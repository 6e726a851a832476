import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import fs from "node:fs";
import { FerryError } from "../errors.js";
import { readStatus } from "../kernel/procfs.js";
import { sleepSync } from "../kernel/sys.js";
import { cachedBinary } from "./cachedBinary.js";

/*
 * Two "hosts" on one machine (DESIGN.md section 11): each is a network namespace, a PID
 * namespace and a mount namespace (with its own /proc), joined by a veth pair with MTU 1500, as
 * on a real link. hA is 127.100.0.1/24 on vA, hB is 127.100.0.2/24 on vB. A small init runs as
 * PID 1 of each (it reaps orphans, and PID 1 must not be a victim: it ignores signals it has no
 * handler for). Everything is named after the creating process and removed on every path:
 * destroy(), process exit, SIGINT/SIGTERM, and by the next run if this one was SIGKILLed.
 *
 * Needs root, `ip` (iproute2), `unshare` and `nsenter` (util-linux), and gcc for the init.
 */

export interface Host {
  /** "hA" or "hB" */
  readonly name: string;
  /** the network namespace (`ip netns` name) */
  readonly netns: string;
  /** its address on the veth */
  readonly address: string;
  /** the init of its PID namespace, as the root namespace sees it */
  readonly initPid: number;
  /** Run a command inside (network, PID and mount namespace); like child_process.spawn. */
  spawn(argv: string[], opts?: SpawnOptions): ChildProcess;
  /** Run a command inside to its end; throws with its stderr when it fails. */
  run(argv: string[]): string;
  /**
   * Make the next process started in this host get a PID above `pid` (ns_last_pid): a victim
   * that will be restored on the other host must not collide with that host's own processes.
   */
  skipPidsTo(pid: number): void;
  /** The root namespace's PID of the process this host calls `pid` (null when there is none). */
  rootPid(pid: number): number | null;
  /** This host's PID of a process the root namespace calls `rootPid` (null when not in this host). */
  localPid(rootPid: number): number | null;
}

export interface TwoHosts {
  readonly a: Host;
  readonly b: Host;
  /** Kill everything inside and remove the namespaces and the veth. Idempotent. */
  destroy(): void;
}

const PREFIX = "ferry-h";
const INIT_SOURCE = `
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
/* PID 1 of a test host: reap every child, and on SIGTERM/SIGINT take everyone down. */
int main(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, 0);
  for (;;) {
    int sig = sigwaitinfo(&set, 0);
    while (waitpid(-1, 0, WNOHANG) > 0) {}
    if (sig == SIGTERM || sig == SIGINT) {
      kill(-1, SIGKILL);
      while (wait(0) > 0) {}
      return 0;
    }
  }
}
`;

let counter = 0;
const live = new Set<TwoHosts>();
let hooked = false;

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new FerryError("FERRY_HOSTS", `${cmd} ${args.join(" ")}: ${(err.stderr || err.message).trim()}`);
  }
}
function quiet(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: "ignore" });
  } catch { /* best effort */ }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Namespaces left by test runs that died without cleaning up (their creator is gone). */
export function removeStaleHosts(): void {
  let list = "";
  try {
    list = sh("ip", ["netns", "list"]);
  } catch {
    return;
  }
  for (const line of list.split("\n")) {
    const name = line.split(" ")[0];
    const m = new RegExp(`^${PREFIX}[AB]-(\\d+)-\\d+$`).exec(name);
    if (m && !alive(Number(m[1]))) removeNetns(name);
  }
}

function removeNetns(name: string): void {
  try {
    for (const pid of sh("ip", ["netns", "pids", name]).split(/\s+/).filter(Boolean)) quiet("kill", ["-9", pid]);
  } catch { /* gone */ }
  quiet("ip", ["netns", "del", name]);
}

function nsPidOf(rootPid: number): { ns: string; nspids: number[] } | null {
  try {
    const nspids = (readStatus(rootPid).NSpid ?? "").split(/\s+/).filter(Boolean).map(Number);
    return { ns: fs.readlinkSync(`/proc/${rootPid}/ns/pid`), nspids };
  } catch {
    return null;
  }
}


/** Create hA and hB. */
export function createHosts(): TwoHosts {
  if (process.getuid?.() !== 0) throw new FerryError("FERRY_HOSTS", "two local hosts need root (network and PID namespaces)");
  removeStaleHosts();
  const init = cachedBinary(INIT_SOURCE, "ferry-host-init", "-O1", "FERRY_HOSTS", "the host init");
  const id = `${process.pid}-${counter++}`;
  const made: { netns: string[]; inits: ChildProcess[] } = { netns: [], inits: [] };
  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    live.delete(hosts);
    for (const c of made.inits) if (c.pid && alive(c.pid)) quiet("kill", ["-9", String(c.pid)]);
    for (const n of made.netns) removeNetns(n);
  };
  const hosts: TwoHosts = { a: null as unknown as Host, b: null as unknown as Host, destroy };
  live.add(hosts);
  hookExit();
  try {
    const specs = [
      { name: "hA", dev: "vA", address: "127.100.0.1" },
      { name: "hB", dev: "vB", address: "127.100.0.2" },
    ];
    const netns = specs.map((s) => `${PREFIX}${s.name.slice(1)}-${id}`);
    const tmpDev = specs.map((s) => `f${s.dev}${id.replace("-", "x")}`.slice(0, 15));
    for (const n of netns) {
      sh("ip", ["netns", "add", n]);
      made.netns.push(n);
    }
    sh("ip", ["link", "add", tmpDev[0], "type", "veth", "peer", "name", tmpDev[1]]);
    specs.forEach((s, i) => {
      const n = netns[i];
      sh("ip", ["link", "set", tmpDev[i], "netns", n]);
      sh("ip", ["-n", n, "link", "set", tmpDev[i], "name", s.dev]);
      sh("ip", ["-n", n, "link", "set", "lo", "up"]);
      sh("ip", ["netns", "exec", n, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1", `net.ipv4.conf.${s.dev}.route_localnet=1`]);
      sh("ip", ["-n", n, "addr", "add", `${s.address}/24`, "dev", s.dev]);
      sh("ip", ["-n", n, "link", "set", s.dev, "mtu", "1500", "up"]);
    });
    const built = specs.map((s, i) => makeHost(s.name, netns[i], s.address, init, made.inits));
    (hosts as { a: Host }).a = built[0];
    (hosts as { b: Host }).b = built[1];
    return hosts;
  } catch (e) {
    destroy();
    throw e;
  }
}

function makeHost(name: string, netns: string, address: string, init: string, inits: ChildProcess[]): Host {
  // ip netns exec (enters the netns) → unshare (new PID + mount ns, /proc remounted) → init as PID 1
  const starter = spawn("ip", ["netns", "exec", netns, "unshare", "--pid", "--fork", "--kill-child", "--mount-proc", init], { stdio: "ignore" });
  starter.on("error", () => {});
  inits.push(starter);
  let initPid = 0;
  for (let i = 0; i < 400 && !initPid; i++) {
    try {
      const kids = fs.readFileSync(`/proc/${starter.pid}/task/${starter.pid}/children`, "utf8").trim();
      const p = kids ? Number(kids.split(" ")[0]) : 0;
      if (p && nsPidOf(p)?.nspids.at(-1) === 1) initPid = p;
    } catch { /* not yet */ }
    if (!initPid) sleepSync(5);
  }
  if (!initPid) throw new FerryError("FERRY_HOSTS", `the init of ${name} did not start`);
  const pidns = fs.readlinkSync(`/proc/${initPid}/ns/pid`);
  const enter = (argv: string[], cwd?: string) => ["-t", String(initPid), "-p", "-m", "-n", ...(cwd ? [`--wd=${cwd}`] : []), "--", ...argv];
  return {
    name, netns, address, initPid,
    spawn(argv, opts = {}) {
      const cwd = typeof opts.cwd === "string" ? opts.cwd : undefined;
      return spawn("nsenter", enter(argv, cwd), { ...opts, cwd: undefined });
    },
    run(argv) {
      return sh("nsenter", enter(argv));
    },
    skipPidsTo(pid) {
      sh("nsenter", enter(["sh", "-c", `echo ${Math.floor(pid)} > /proc/sys/kernel/ns_last_pid`]));
    },
    rootPid(pid) {
      for (const e of fs.readdirSync("/proc")) {
        const p = Number(e);
        if (!p) continue;
        const info = nsPidOf(p);
        if (info && info.ns === pidns && info.nspids.at(-1) === pid) return p;
      }
      return null;
    },
    localPid(rootPid) {
      const info = nsPidOf(rootPid);
      return info && info.ns === pidns ? info.nspids.at(-1) ?? null : null;
    },
  };
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const all = () => {
    for (const h of [...live]) h.destroy();
  };
  process.on("exit", all);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      all();
      process.exit(sig === "SIGINT" ? 130 : 143);
    });
  }
}
