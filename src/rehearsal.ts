import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { dump } from "./dump/index.js";
import { waitTask } from "./kernel/ptrace.js";
import { processExists } from "./kernel/procfs.js";
import { PAGE_SIZE } from "./kernel/sys.js";
import { warmImageCodecs } from "./images/store.js";
import { restoreLazyWithServer } from "./lazy/destination.js";
import { loadLazyImages } from "./lazy/images.js";
import type { LocalPages } from "./lazy/daemon.js";
import { PageStore } from "./migrate/pageStore.js";
import { pageFrames } from "./migrate/pageFrames.js";
import type { LazyRunImage } from "./images/types.js";

/**
 * Node compiles a function when it is first called and tunes it over its first runs: the first
 * dump of a `ferry migrate`, and the first restore of a `ferry agent`, ran 2–3 times slower than
 * the next ones, and both run while the migrating process is stopped. So each side rehearses its
 * part on a throwaway process (a `sleep` of its own) before any migration. The source dumps it
 * as a migration does (lazily but for stop-copy); the agent dumps it lazily and restores it the
 * way a pre-copy migration's agent does: restore, resume, then the lazy-pages daemon installs
 * its memory from a copy held here. Nothing of the rehearsal stays: its processes are killed and
 * its images removed, and a rehearsal that fails (no `sleep`, a PID taken meanwhile) only means
 * the real run is colder. `ferry dump --lazy` rehearses its dump too: its process runs meanwhile.
 */
export async function rehearse(part: "dump" | "restore", lazy: boolean, log?: (line: string) => void): Promise<void> {
  warmImageCodecs();
  const sleep = ["/bin/sleep", "/usr/bin/sleep"].find((p) => fs.existsSync(p));
  if (!sleep) return;
  const dir = fs.mkdtempSync(path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), "ferry-rehearsal-"));
  const child = spawn(sleep, ["600"], { stdio: "ignore" });
  child.on("error", () => {});
  let restored = 0;
  try {
    const pid = child.pid;
    if (!pid) return;
    await execed(pid, sleep);
    const d = dump({ pid, images: dir, lazy: part === "restore" || lazy, leaveStopped: true });
    if (part === "dump") {
      if (lazy) loadLazyImages(dir); // what a page server reads next
      return;
    }
    const local = heldPages(pid, d.lazyRuns);
    process.kill(pid, "SIGKILL");
    await within1s(() => !processExists(pid)); // its PID free again
    const r = await restoreLazyWithServer({ images: dir, pageServer: null, local, log });
    restored = r.restored.pid;
    const summary = await r.transfer;
    if (summary.outcome !== "complete") throw new Error(summary.error ?? summary.outcome);
  } catch (e) {
    log?.(`rehearsal of the ${part} failed (the first migration will be slower): ${(e as Error).message}`);
  } finally {
    for (const p of [child.pid, restored]) {
      try {
        if (p) process.kill(p, "SIGKILL");
      } catch { /* gone */ }
    }
    if (restored) reap(restored);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Until `pid` runs `exe` (spawn returns before the exec). */
async function execed(pid: number, exe: string): Promise<void> {
  const want = fs.realpathSync(exe);
  const runs = () => {
    try {
      return fs.readlinkSync(`/proc/${pid}/exe`) === want;
    } catch {
      return false; // not yet
    }
  };
  if (!(await within1s(runs))) throw new Error(`${exe} did not start`);
}

/** Whether `done` came true within a second (asked every 5 ms). */
async function within1s(done: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (done()) return true;
    await sleep(5);
  }
  return done();
}

/** A copy of the lazy pages of a frozen process, held as a pre-copy agent holds what its rounds brought. */
function heldPages(pid: number, runs: LazyRunImage[]): LocalPages {
  const store = new PageStore();
  for (const f of pageFrames(pid, runs.map((r) => ({ start: r.vaddr, end: r.vaddr + r.nrPages * PAGE_SIZE })))) store.add(f.addr, f.n, f.payload);
  return store.localPages(runs.map((r) => [r.vaddr, r.nrPages]));
}

/** A restored process is ferry's child: wait for it once killed. */
function reap(pid: number): void {
  try {
    waitTask(pid);
  } catch { /* not ours, or reaped */ }
}
