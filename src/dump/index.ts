import os from "node:os";
import { FerryError } from "../errors.js";
import { NR, SIG, sys } from "../kernel/sys.js";
import { getSigmask, setRegs, setSigmask, waitTask } from "../kernel/ptrace.js";
import { readVmas } from "../kernel/procfs.js";
import { Injector, SCRATCH_SIZE } from "../kernel/inject.js";
import { vdsoIdentity } from "../kernel/vdso.js";
import { ImageDir, FORMAT_VERSION } from "../images/store.js";
import { PagesWriter } from "../images/pages.js";
import { u64le, type Inventory } from "../images/types.js";
import { validateTarget, seizeTask, detachTask } from "./seize.js";
import { threadRegs, dumpThread, dumpCore } from "./core.js";
import { describeVma, dumpMmFields, dumpPages } from "./mm.js";
import { dumpFds } from "../files/registry.js";

export const FERRY_VERSION = "0.1.0";

export interface DumpOptions {
  pid: number;
  images: string;
  /** keep the process running after a good dump (default: kill it, as CRIU does) */
  leaveRunning?: boolean;
  /** leave it stopped (SIGSTOP) after a good dump */
  leaveStopped?: boolean;
  shellJob?: boolean;
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
  const { pid } = opts;
  validateTarget(pid);
  const images = ImageDir.create(opts.images);
  seizeTask(pid);
  const frozenAt = performance.now();
  const { regs, restarted } = threadRegs(pid);
  const sigmask = getSigmask(pid);
  let inj: Injector | null = null;
  let done = false;
  try {
    const vmas = readVmas(pid);
    inj = Injector.forTask(pid, vmas);
    // Nothing may be delivered while ferry runs calls inside the task: block everything.
    setSigmask(pid, ~0n);
    inj.mapScratch(SCRATCH_SIZE);
    const thread = dumpThread(pid, inj, regs, restarted);
    thread.sigmask = u64le(sigmask);
    const core = dumpCore(pid, inj, thread);
    const vmaImages = vmas.map((v) => describeVma(v));
    const mm = dumpMmFields(pid, inj, vmaImages);
    inj.unmapScratch();

    const pages = new PagesWriter(images.path(`pages-${pid}.img`));
    let zero = 0;
    try {
      zero = dumpPages(pid, vmaImages, pages);
    } finally {
      pages.close();
    }
    const { fds, files } = dumpFds(pid, images, 1);
    const vdso = vdsoIdentity(pid, vmas);
    const inventory: Inventory = {
      formatVersion: FORMAT_VERSION, ferryVersion: FERRY_VERSION, arch: os.arch(), kernel: os.release(),
      vdsoSha256: vdso.sha256, vdsoSize: vdso.size, rootPid: pid, pids: [pid], createdMs: Date.now(),
      lazy: false, shellJob: !!opts.shellJob,
    };
    images.write(`core-${pid}.img`, "Core", core);
    images.write(`mm-${pid}.img`, "Mm", mm);
    images.write(`pagemap-${pid}.img`, "PageMap", { runs: pages.runs, totalPages: pages.pages, zeroPagesSkipped: zero });
    images.write(`fds-${pid}.img`, "FdTable", { fds });
    images.write("files.img", "Files", { files });
    images.write("inventory.img", "Inventory", inventory); // last: its presence means complete
    done = true;
    const result: DumpResult = {
      pid, pages: pages.pages, zeroPagesSkipped: zero, frozenMs: 0, durationMs: 0, injectedSyscalls: inj.count,
    };
    finish(pid, regs, sigmask, opts);
    result.frozenMs = performance.now() - frozenAt;
    result.durationMs = performance.now() - t0;
    return result;
  } finally {
    if (!done) {
      // Put the process back as it was and let it go: a failed dump must not hurt it.
      try {
        if (inj?.scratch) inj.unmapScratch();
      } catch { /* keep the first error */ }
      try {
        setRegs(pid, regs);
        setSigmask(pid, sigmask);
        detachTask(pid);
      } catch { /* it may be gone */ }
    }
  }
}

function finish(pid: number, regs: import("../kernel/ptrace.js").Regs, sigmask: bigint, opts: DumpOptions): void {
  setRegs(pid, regs);
  setSigmask(pid, sigmask);
  if (opts.leaveRunning) {
    detachTask(pid);
  } else if (opts.leaveStopped) {
    detachTask(pid, SIG.STOP);
  } else {
    sys("kill", NR.kill, pid, SIG.KILL);
    try {
      waitTask(pid); // the exit, as seen by its tracer
    } catch { /* already reaped */ }
  }
}

export { FerryError };
