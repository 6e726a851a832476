import os from "node:os";
import { FerryError } from "../errors.js";
import { NR, SIG, sys } from "../kernel/sys.js";
import { getSigmask, setRegs, setSigmask, waitTask, type Regs } from "../kernel/ptrace.js";
import { readVmas } from "../kernel/procfs.js";
import { Injector, SCRATCH_SIZE } from "../kernel/inject.js";
import { vdsoIdentity } from "../kernel/vdso.js";
import { ImageDir, FORMAT_VERSION } from "../images/store.js";
import { PagesWriter } from "../images/pages.js";
import { u64le, type Inventory } from "../images/types.js";
import { validateTarget, seizeProcess, detachTask } from "./seize.js";
import { threadRegs, dumpThread, dumpCore } from "./core.js";
import { describeVma, dumpMmFields, dumpPages } from "./mm.js";
import { dumpFds } from "../files/registry.js";
import { planLazyDump, writeEagerPages } from "../lazy/plan.js";

export const FERRY_VERSION = "0.1.0";

export interface DumpOptions {
  pid: number;
  images: string;
  /** keep the process running after a good dump (default: kill it, as CRIU does) */
  leaveRunning?: boolean;
  /** leave it stopped (SIGSTOP) after a good dump */
  leaveStopped?: boolean;
  shellJob?: boolean;
  /** lazy migration: leave private anonymous memory out (a page server sends it) and the process frozen */
  lazy?: boolean;
}

export interface DumpResult {
  pid: number;
  pages: number;
  zeroPagesSkipped: number;
  frozenMs: number;
  durationMs: number;
  injectedSyscalls: number;
}

/**
 * Freeze a process, write its whole state to an image directory, then kill it (or leave it).
 * If anything fails, the process is let go exactly as it was.
 */
export function dump(opts: DumpOptions): DumpResult {
  const t0 = performance.now();
  if (opts.lazy) opts = { ...opts, leaveStopped: true, leaveRunning: false }; // the page store
  const { pid } = opts;
  validateTarget(pid);
  const images = ImageDir.create(opts.images);
  const tids = seizeProcess(pid);
  const frozenAt = performance.now();
  // What each thread must get back, whatever happens next.
  const saved = tids.map((tid) => ({ tid, ...threadRegs(tid), sigmask: getSigmask(tid) }));
  let inj: Injector | null = null;
  let done = false;
  try {
    const vmas = readVmas(pid);
    inj = Injector.forTask(pid, vmas);
    // Nothing may be delivered while ferry runs calls inside the task: block everything.
    for (const t of saved) setSigmask(t.tid, ~0n);
    inj.mapScratch(SCRATCH_SIZE);
    const main = inj;
    const threads = saved.map((t) => {
      const image = dumpThread(t.tid, t.tid === pid ? main : main.forThread(t.tid), t.regs, t.restarted);
      image.sigmask = u64le(t.sigmask);
      return image;
    });
    const core = dumpCore(pid, inj, threads);
    const vmaImages = vmas.map((v) => describeVma(v));
    const mm = dumpMmFields(pid, inj, vmaImages);
    const lazy = opts.lazy ? planLazyDump(pid, vmaImages, core.threads) : null;
    inj.unmapScratch();

    const pages = new PagesWriter(images.path(`pages-${pid}.img`));
    let zero = 0;
    try {
      zero = dumpPages(pid, vmaImages.filter((v) => !v.lazy), pages);
      if (lazy) writeEagerPages(pid, lazy, pages);
    } finally {
      pages.close();
    }
    const { fds, files } = dumpFds(pid, images, 1);
    const vdso = vdsoIdentity(pid, vmas);
    const inventory: Inventory = {
      formatVersion: FORMAT_VERSION, ferryVersion: FERRY_VERSION, arch: os.arch(), kernel: os.release(),
      vdsoSha256: vdso.sha256, vdsoSize: vdso.size, rootPid: pid, pids: [pid], createdMs: Date.now(),
      lazy: !!lazy, shellJob: !!opts.shellJob, frozenAtUs: Math.round((performance.timeOrigin + frozenAt) * 1000),
    };
    images.write(`core-${pid}.img`, "Core", core);
    images.write(`mm-${pid}.img`, "Mm", mm);
    images.write(`pagemap-${pid}.img`, "PageMap", { runs: pages.runs, totalPages: pages.pages, zeroPagesSkipped: zero, lazyRuns: lazy?.lazyRuns ?? [], lazyPages: lazy?.lazyPages ?? 0 });
    images.write(`fds-${pid}.img`, "FdTable", { fds });
    images.write("files.img", "Files", { files });
    images.write("inventory.img", "Inventory", inventory); // last: its presence means complete
    done = true;
    const result: DumpResult = {
      pid, pages: pages.pages, zeroPagesSkipped: zero, frozenMs: 0, durationMs: 0, injectedSyscalls: inj.count,
    };
    finish(pid, saved, opts);
    result.frozenMs = performance.now() - frozenAt;
    result.durationMs = performance.now() - t0;
    return result;
  } finally {
    if (!done) {
      // Put the process back as it was and let it go: a failed dump must not hurt it.
      try {
        if (inj?.scratch) inj.unmapScratch();
      } catch { /* keep the first error */ }
      for (const t of saved) {
        try {
          setRegs(t.tid, t.regs);
          setSigmask(t.tid, t.sigmask);
          detachTask(t.tid);
        } catch { /* it may be gone */ }
      }
    }
  }
}

type SavedThread = { tid: number; regs: Regs; sigmask: bigint };

function finish(pid: number, saved: SavedThread[], opts: DumpOptions): void {
  for (const t of saved) {
    setRegs(t.tid, t.regs);
    setSigmask(t.tid, t.sigmask);
  }
  if (opts.leaveRunning || opts.leaveStopped) {
    // SIGSTOP handed to the main thread as it is let go stops the whole group.
    for (const t of saved) detachTask(t.tid, opts.leaveStopped && t.tid === pid ? SIG.STOP : 0);
  } else {
    sys("kill", NR.kill, pid, SIG.KILL);
    // The leader's exit is reported only after its threads are reaped: threads first.
    for (const t of [...saved].reverse()) {
      try {
        waitTask(t.tid); // the exit, as seen by its tracer
      } catch { /* already reaped */ }
    }
  }
}

export { FerryError };
