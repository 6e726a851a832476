import fs from "node:fs";
import os from "node:os";
import { FerryError } from "../errors.js";
import { native } from "../kernel/native.js";
import { NR, SIG, sys, errnoName } from "../kernel/sys.js";
import { PTRACE, PTRACE_O, ptrace, waitStop, waitTask, getRseqConfig, setSigmask, setRegs, setRegset, NT_X86_XSTATE, Regs } from "../kernel/ptrace.js";
import { processExists, readStat } from "../kernel/procfs.js";
import { Injector } from "../kernel/inject.js";
import { vdsoIdentity } from "../kernel/vdso.js";
import { ImageDir } from "../images/store.js";
import { readU64le, type CoreImage, type FdTableImage, type FilesImage, type Inventory, type MmImage, type PageMapImage } from "../images/types.js";
import { placeScratch, clearAddressSpace, moveVdso, mapVmas, fillPages, setMmFields, vmasToFill } from "./mm.js";
import { restoreSigactions, restoreTimers, restoreRlimits, restoreProcessAttrs, restoreThreadState, restorePending, restoreCreds } from "./core.js";
import { OpenedFiles, installFds } from "./files.js";

export interface RestoreOptions {
  images: string;
  shellJob?: boolean;
}

export interface Restored {
  pid: number;
  durationMs: number;
  bytes: number;
  injectedSyscalls: number;
}

interface ProcessImages {
  inventory: Inventory;
  core: CoreImage;
  mm: MmImage;
  pagemap: PageMapImage;
  fds: FdTableImage;
  files: FilesImage;
}

/** Read and check everything before touching the system: a bad image fails here, whole. */
export function loadImages(images: ImageDir): ProcessImages {
  const inventory = images.read<Inventory>("inventory.img", "Inventory");
  if (inventory.arch !== os.arch()) {
    throw new FerryError("FERRY_IMAGE_ARCH", `${images.dir}: images are for ${inventory.arch}, this machine is ${os.arch()}`);
  }
  const vdso = vdsoIdentity("self");
  if (inventory.vdsoSize && !vdso.sha256.equals(inventory.vdsoSha256)) {
    throw new FerryError("FERRY_VDSO_MISMATCH", `${images.dir}: images come from a kernel with another vDSO (${inventory.kernel}, this is ${os.release()}): restore on the same kernel build`);
  }
  const pid = inventory.rootPid;
  return {
    inventory,
    core: images.read<CoreImage>(`core-${pid}.img`, "Core"),
    mm: images.read<MmImage>(`mm-${pid}.img`, "Mm"),
    pagemap: images.read<PageMapImage>(`pagemap-${pid}.img`, "PageMap"),
    fds: images.read<FdTableImage>(`fds-${pid}.img`, "FdTable"),
    files: images.read<FilesImage>("files.img", "Files"),
  };
}

function checkPidFree(pid: number): void {
  if (processExists(pid)) {
    let comm = "?";
    try {
      comm = readStat(pid).comm;
    } catch { /* gone meanwhile */ }
    throw new FerryError("FERRY_PID_TAKEN", `PID ${pid} is already taken by another process (${comm}): stop it or restore in another PID namespace`);
  }
}

/**
 * Bring a dumped process back with its own PID. The task is built from outside: a clone3 stub
 * with set_tid, then system calls injected into it. On any failure the stub is killed: nothing
 * half-restored is left running.
 */
export function restore(opts: RestoreOptions): Restored {
  const t0 = performance.now();
  const images = new ImageDir(opts.images);
  const img = loadImages(images);
  const pid = img.inventory.rootPid;
  checkPidFree(pid);
  const fill = vmasToFill(img.mm, img.pagemap);
  const opened = new OpenedFiles(images, img.files);
  let child = -1;
  try {
    opened.openAll();
    child = native.spawnStub([pid], 0);
    if (child < 0) {
      if (child === -17) checkPidFree(pid);
      throw new FerryError("FERRY_CLONE", `clone3 with PID ${pid} failed: ${errnoName(-child)}`);
    }
    waitStop(child);
    ptrace(PTRACE.SETOPTIONS, child, 0, PTRACE_O.TRACESYSGOOD | PTRACE_O.EXITKILL);
    const { bytes, injected } = build(child, img, images, fill, opened, !!opts.shellJob || img.inventory.shellJob);
    ptrace(PTRACE.DETACH, child, 0, 0);
    return { pid: child, durationMs: performance.now() - t0, bytes, injectedSyscalls: injected };
  } catch (e) {
    if (child > 0) {
      sys("kill", NR.kill, child, SIG.KILL);
      try {
        waitTask(child);
      } catch { /* reaped */ }
    }
    throw e;
  } finally {
    opened.close();
  }
}

function build(pid: number, img: ProcessImages, images: ImageDir, fill: ReturnType<typeof vmasToFill>, opened: OpenedFiles, shellJob: boolean) {
  const inj = Injector.forTask(pid);
  // The stub is a copy of ferry: forget ferry's rseq area, signals and fds first.
  const rseq = getRseqConfig(pid);
  if (rseq.address) inj.ok("rseq unregister", NR.rseq, rseq.address, rseq.length, 1, rseq.signature);
  setSigmask(pid, ~0n);
  placeScratch(inj, img.mm.vmas);
  inj.ok("close_range", NR.close_range, 0, 0xffffffff, 0);
  clearAddressSpace(inj);
  moveVdso(inj, img.mm.vmas);
  mapVmas(inj, img.mm, fill);
  const bytes = fillPages(inj, img.mm, img.pagemap, images.path(`pages-${img.core.pid}.img`), fill);
  setMmFields(inj, img.mm);
  installFds(inj, img.fds, opened);
  restoreSigactions(inj, img.core);
  restoreRlimits(inj, img.core);
  restoreTimers(inj, img.core);
  const thread = img.core.threads[0];
  restoreThreadState(inj, thread);
  restoreProcessAttrs(inj, img.core, shellJob);
  restorePending(inj, img.core);
  restoreCreds(inj, img.core);
  inj.unmapScratch();
  // Last, at this syscall-exit stop: the registers and mask the process had.
  if (thread.xstate.length) setRegset(pid, NT_X86_XSTATE, thread.xstate);
  setRegs(pid, new Regs(Buffer.from(thread.regs)));
  setSigmask(pid, readU64le(thread.sigmask));
  return { bytes, injected: inj.count };
}

/** Wait for a restored child of ours to end; resolves with a shell-style exit code. */
export function waitForExit(pid: number): Promise<number> {
  return new Promise((resolve) => {
    const pidfd = sys("pidfd_open", NR.pidfd_open, pid, 0);
    const handle = native.pollStart(pidfd, 1, () => {
      const st = waitTask(pid, 1 /* WNOHANG */);
      if (!st) return;
      native.pollStop(handle);
      fs.closeSync(pidfd);
      resolve(st.exited ? st.exitCode : 128 + st.termSig);
    });
  });
}
