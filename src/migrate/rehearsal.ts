import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { dump } from "../dump/index.js";
import { restore } from "../restore/index.js";
import { waitTask } from "../kernel/ptrace.js";
import { processExists } from "../kernel/procfs.js";
import { warmImageCodecs } from "../images/store.js";

/**
 * Node compiles a function when it is first called and tunes it over its first runs: the first
 * dump of a `ferry migrate`, and the first restore of a `ferry agent`, ran 2–3 times slower than
 * the next ones, and both run while the migrating process is stopped. So each side rehearses its
 * part on a throwaway process (a `sleep` of its own) before any migration: the source dumps it,
 * the agent dumps it and restores it. Nothing of the rehearsal stays: the process is killed and
 * its images removed, and a rehearsal that fails (no `sleep`, a PID taken meanwhile) only means
 * the real run is colder.
 */
export async function rehearse(part: "dump" | "restore", lazy: boolean, log?: (line: string) => void): Promise<void> {
  warmImageCodecs();
  const sleep = ["/bin/sleep", "/usr/bin/sleep"].find((p) => fs.existsSync(p));
  if (!sleep) return;
  const dir = fs.mkdtempSync(path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), "ferry-rehearsal-"));
  const child = spawn(sleep, ["600"], { stdio: "ignore" });
  child.on("error", () => {});
  const pids = new Set<number>();
  try {
    const pid = child.pid;
    if (!pid) return;
    pids.add(pid);
    await execed(pid, sleep);
    // lazy: as a migration dumps (the process left frozen); else killed by the dump, as a restore needs
    dump({ pid, images: dir, lazy: part === "dump" && lazy, leaveStopped: part === "dump" });
    if (part === "restore") {
      for (let i = 0; i < 200 && processExists(pid); i++) await new Promise((r) => setTimeout(r, 5)); // its PID free again (the dump reaped it)
      pids.add(restore({ images: dir }).pid);
    }
  } catch (e) {
    log?.(`rehearsal of the ${part} failed (the first migration will be slower): ${(e as Error).message}`);
  } finally {
    for (const p of pids) {
      try {
        process.kill(p, "SIGKILL");
      } catch { /* gone */ }
    }
    for (const p of pids) if (p !== child.pid) reap(p);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Until `pid` runs `exe` (spawn returns before the exec). */
async function execed(pid: number, exe: string): Promise<void> {
  const want = fs.realpathSync(exe);
  for (let i = 0; i < 200; i++) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/exe`) === want) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`${exe} did not start`);
}

/** A restored process is ferry's child: wait for it once killed. */
function reap(pid: number): void {
  try {
    waitTask(pid);
  } catch { /* not ours, or reaped */ }
}
