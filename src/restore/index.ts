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
import { checkLazyRestore, createTargetUffd, registerLazyRanges, type TargetUffd } from "../lazy/attach.js";

export interface RestoreOptions {
  images: string;
  shellJob?: boolean;
  /**
   * Lazy images: called just before the process resumes, with ferry's copy of its userfaultfd
   * (lazy ranges registered, MISSING). The callee takes the fd over (hands it to a daemon).
   */
  lazy?: (uffd: TargetUffd) => void;
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
  checkLazyRestore(img.inventory, opts.images, !!opts.lazy);
  const pid = img.inventory.rootPid;
  checkPidFree(pid);
  const fill = vmasToFill(img.mm, img.pagemap);
  const opened = new OpenedFiles(images, img.files);
  let child = -1;
  const tids: number[] = []; // every task created so far, to reap on failure
  try {
    opened.openAll();
    child = native.spawnStub([pid], 0);
    if (child < 0) {
      if (child === -17) checkPidFree(pid);
      throw new FerryError("FERRY_CLONE", `clone3 with PID ${pid} failed: ${errnoName(-child)}`);
    }
    tids.push(child);
    waitStop(child);
    ptrace(PTRACE.SETOPTIONS, child, 0, PTRACE_O.TRACESYSGOOD | PTRACE_O.EXITKILL | PTRACE_O.TRACECLONE);
    const { bytes, injected } = build(child, img, images, fill, opened, !!opts.shellJob || img.inventory.shellJob, tids, opts.lazy);
    for (const tid of tids) ptrace(PTRACE.DETACH, tid, 0, 0);
    return { pid: child, durationMs: performance.now() - t0, bytes, injectedSyscalls: injected };
  } catch (e) {
    if (child > 0) {
      sys("kill", NR.kill, child, SIG.KILL);
      // The leader's exit is reported only after its threads are reaped: threads first.
      for (const tid of [...tids].reverse()) {
        try {
          waitTask(tid);
        } catch { /* reaped */ }
      }
    }
    throw e;
  } finally {
    opened.close();
  }
}

function build(
  pid: number, img: ProcessImages, images: ImageDir, fill: ReturnType<typeof vmasToFill>, opened: OpenedFiles,
  shellJob: boolean, tids: number[], lazy?: (uffd: TargetUffd) => void,
) {
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
  // made inside the process while it still has our privileges; registered after the last injection
  const uffd = lazy ? createTargetUffd(inj) : null;
  installFds(inj, img.fds, opened);
  restoreSigactions(inj, img.core);
  restoreRlimits(inj, img.core);
  restoreTimers(inj, img.core);
  restoreProcessAttrs(inj, img.core, shellJob);
  // Every other thread: cloned inside the process with its TID, then given its own state.
  const [mainThread, ...others] = img.core.threads;
  const threads = [{ image: mainThread, inj }];
  for (const t of others) {
    threads.push({ image: t, inj: cloneThread(inj, t.tid) });
    tids.push(t.tid);
  }
  for (const t of threads) restoreThreadState(t.inj, t.image);
  restorePending(inj, img.core);
  for (const t of threads) restoreCreds(t.inj, img.core);
  inj.unmapScratch();
  if (uffd) {
    try {
      lazy!(registerLazyRanges(pid, uffd, img.mm.vmas));
    } catch (e) {
      fs.closeSync(uffd.fd);
      throw e;
    }
  }
  // Last, each thread at its stop: the registers and mask it had.
  for (const { image } of threads) {
    if (image.xstate.length) setRegset(image.tid, NT_X86_XSTATE, image.xstate);
    setRegs(image.tid, new Regs(Buffer.from(image.regs)));
    setSigmask(image.tid, readU64le(image.sigmask));
  }
  return { bytes, injected: threads.reduce((n, t) => n + t.inj.count, 0) };
}

const CLONE_THREAD_FLAGS = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000; // VM FS FILES SIGHAND THREAD SYSVSEM

/**
 * A thread with a chosen TID: clone3 with set_tid run by the main thread. PTRACE_O_TRACECLONE
 * attaches the new thread, which stops before running a single instruction of its own.
 */
function cloneThread(inj: Injector, tid: number): Injector {
  const args = Buffer.alloc(88);
  const tidBuf = Buffer.alloc(4);
  tidBuf.writeInt32LE(tid);
  const tidAddr = inj.put(512, tidBuf);
  args.writeBigUInt64LE(BigInt(CLONE_THREAD_FLAGS), 0);
  args.writeBigUInt64LE(BigInt(tidAddr), 64); // set_tid
  args.writeBigUInt64LE(1n, 72); // set_tid_size
  const got = inj.ok(`clone3(thread ${tid})`, NR.clone3, inj.put(0, args), args.length);
  if (got !== tid) throw new FerryError("FERRY_CLONE", `thread ${tid} came back as ${got}`);
  waitStop(tid);
  return inj.forThread(tid);
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
