import fs from "node:fs";
import os from "node:os";
import { FerryError } from "../errors.js";
import { native } from "../kernel/native.js";
import { NR, sys, errnoName } from "../kernel/sys.js";
import { PTRACE, PTRACE_O, ptrace, waitStop, waitTask, getRseqConfig, setSigmask, setRegs, setRegset, NT_X86_XSTATE, Regs } from "../kernel/ptrace.js";
import { processExists, readStat } from "../kernel/procfs.js";
import { Injector } from "../kernel/inject.js";
import { vdsoIdentity } from "../kernel/vdso.js";
import { ImageDir } from "../images/store.js";
import { readU64le, type CoreImage, type FdTableImage, type FilesImage, type Inventory, type MmImage, type PageMapImage, type VmaImage } from "../images/types.js";
import { placeScratch, clearAddressSpace, moveVdso, mapVmas, setMmFields, vmasToFill, type SharedObjects } from "./mm.js";
import { becomeSubreaper, cloneProcess, cloneThread, killAll, makeZombie, type Task } from "./tasks.js";
import { restoreSigactions, restoreItimers, restorePosixTimers, restoreRlimits, restoreProcessAttrs, restoreThreadState, restorePending, restoreCreds, ownInherited, type Inherited } from "./core.js";
import { OpenedFiles, installFds } from "./files.js";
import { fillPages } from "./fill.js";
import { keptMappings, dropUninherited } from "./inherited.js";
import { checkLazyRestore, createTargetUffd, registerLazyRanges, type TargetUffd } from "../lazy/attach.js";
import { Spans } from "../spans.js";

export interface RestoreOptions {
  /** the images directory (an ImageDir: one whose reads are shared with another reader) */
  images: string | ImageDir;
  shellJob?: boolean;
  /**
   * Lazy images: called just before the process resumes, with ferry's copy of its userfaultfd
   * (lazy ranges registered, MISSING). The callee owns the fd from then on, also when it throws.
   */
  lazy?: (uffd: TargetUffd) => void;
  /** records how long each step took */
  spans?: Spans;
  /** the root's task, cloned ahead (spawnRestoreStub); restore owns it from the call on */
  stub?: RestoreStub;
}

/**
 * The first task of a restore, cloned ahead of it with the root's PID (which it also keeps from
 * being taken meanwhile), stopped under ptrace. A migration's agent makes it while it is small:
 * the task is a copy of ferry's address space, and cloning it (and then clearing it) later, once
 * ferry holds a process's pre-copied pages, costs tens of ms of the downtime.
 */
export interface RestoreStub {
  readonly pid: number;
  /** what the task got from ferry at its clone: only what differs from it is set again */
  readonly inherited: Inherited;
  /** Not used after all: kill and reap it (nothing once a restore took it). */
  discard(): void;
  /** restore() owns it from now on (it kills it itself if the restore fails) */
  take(): void;
}

export function spawnRestoreStub(pid: number): RestoreStub {
  checkPidFree(pid);
  const task = cloneStub(pid);
  let owned = true;
  return {
    pid, inherited: task.inherited,
    discard: () => {
      if (owned) killAll([{ pid, tid: pid }]);
      owned = false;
    },
    take: () => {
      owned = false;
    },
  };
}

/** clone3 of ferry with `pid`, stopped and traced (killed when ferry ends). */
function cloneStub(pid: number): { inherited: Inherited } {
  const inherited = ownInherited(); // the stub's, as it is cloned right now
  const child = native.spawnStub([pid], 0);
  if (child < 0) {
    if (child === -17) checkPidFree(pid);
    throw new FerryError("FERRY_CLONE", `clone3 with PID ${pid} failed: ${errnoName(-child)}`);
  }
  try {
    waitStop(child);
    ptrace(PTRACE.SETOPTIONS, child, 0, PTRACE_O.TRACESYSGOOD | PTRACE_O.EXITKILL | PTRACE_O.TRACECLONE | PTRACE_O.TRACEFORK);
  } catch (e) {
    killAll([{ pid: child, tid: child }]);
    throw e;
  }
  return { inherited };
}

export interface Restored {
  pid: number;
  durationMs: number;
  bytes: number;
  injectedSyscalls: number;
}

export interface ProcessImages {
  core: CoreImage;
  mm: MmImage;
  pagemap: PageMapImage;
  fds: FdTableImage;
  fill: Set<VmaImage>;
  /** mappings kept as cloned from the parent (pages still shared since fork) */
  kept: Set<VmaImage>;
}

export interface TreeImages {
  inventory: Inventory;
  files: FilesImage;
  /** every process, root first, parents before children */
  procs: Map<number, ProcessImages>;
  /** children that had ended but were not reaped yet */
  zombies: Map<number, CoreImage>;
}

/** Read and check everything before touching the system: a bad image fails here, whole. */
export function loadImages(images: ImageDir): TreeImages {
  const inventory = images.read<Inventory>("inventory.img", "Inventory");
  if (inventory.arch !== os.arch()) {
    throw new FerryError("FERRY_IMAGE_ARCH", `${images.dir}: images are for ${inventory.arch}, this machine is ${os.arch()}`);
  }
  const vdso = vdsoIdentity("self");
  if (inventory.vdsoSize && !vdso.sha256.equals(inventory.vdsoSha256)) {
    throw new FerryError("FERRY_VDSO_MISMATCH", `${images.dir}: images come from a kernel with another vDSO (${inventory.kernel}, this is ${os.release()}): restore on the same kernel build`);
  }
  const procs = new Map<number, ProcessImages>();
  const zombies = new Map<number, CoreImage>();
  for (const pid of inventory.pids.length ? inventory.pids : [inventory.rootPid]) {
    const core = images.read<CoreImage>(`core-${pid}.img`, "Core");
    if (core.zombie) {
      zombies.set(pid, core);
      continue;
    }
    const mm = images.read<MmImage>(`mm-${pid}.img`, "Mm");
    const pagemap = images.read<PageMapImage>(`pagemap-${pid}.img`, "PageMap");
    procs.set(pid, {
      core,
      mm, pagemap,
      fds: images.read<FdTableImage>(`fds-${pid}.img`, "FdTable"),
      fill: vmasToFill(mm, pagemap),
      kept: new Set(),
    });
  }
  for (const [pid, img] of procs) {
    img.kept = keptMappings(images.path(`pagemap-${pid}.img`), img.mm, img.pagemap, pid === inventory.rootPid ? undefined : procs.get(img.core.ppid)?.mm);
  }
  return { inventory, files: images.read<FilesImage>("files.img", "Files"), procs, zombies };
}

/** What one restore owns while it builds the tree: released or killed on every path. */
interface Restoration {
  images: ImageDir;
  tree: TreeImages;
  opened: OpenedFiles;
  shellJob: boolean;
  tasks: Task[];
  sharedObjects: SharedObjects;
  lazy?: (uffd: TargetUffd) => void;
  bytes: number;
  injected: number;
  spans: Spans;
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
  const sp = opts.spans ?? new Spans(t0);
  const images = typeof opts.images === "string" ? new ImageDir(opts.images) : opts.images;
  const tree = sp.time("load images", () => loadImages(images));
  checkLazyRestore(tree.inventory, images.dir, !!opts.lazy);
  const pid = tree.inventory.rootPid;
  let stub = opts.stub ?? null;
  if (stub && (stub.pid !== pid || !processExists(pid))) {
    stub.discard();
    stub = null;
  }
  stub?.take();
  const r: Restoration = {
    images, tree, opened: new OpenedFiles(images, tree.files), shellJob: !!opts.shellJob || tree.inventory.shellJob,
    tasks: stub ? [{ pid, tid: pid }] : [], sharedObjects: new Map(), lazy: opts.lazy, bytes: 0, injected: 0, spans: sp,
  };
  try {
    for (const p of [...tree.procs.keys(), ...tree.zombies.keys()]) if (!stub || p !== pid) checkPidFree(p);
    sp.time("open files", () => r.opened.openAll());
    if (tree.procs.size + tree.zombies.size > 1) becomeSubreaper();
    let inherited: Inherited;
    if (stub) inherited = stub.inherited;
    else {
      inherited = sp.time("clone3", () => cloneStub(pid)).inherited;
      r.tasks.push({ pid, tid: pid });
    }
    const child = pid;
    build(r, Injector.forTask(child), inherited);
    // Every process of the tree is complete: only now does any of them run again.
    sp.time("resume", () => {
      for (const t of r.tasks) ptrace(PTRACE.DETACH, t.tid, 0, 0);
    });
    return { pid: child, durationMs: performance.now() - t0, bytes: r.bytes, injectedSyscalls: r.injected };
  } catch (e) {
    killAll(r.tasks);
    throw e;
  } finally {
    r.opened.close();
  }
}

/** Build one process inside a stopped task that has its PID; its children are built from it. */
function build(r: Restoration, inj: Injector, inherited: Inherited): void {
  const pid = inj.pid;
  const img = r.tree.procs.get(pid)!;
  const sp = r.spans;
  let since = performance.now();
  // The task is a copy of ferry or of its parent: forget their rseq area, signals and fds first.
  const rseq = getRseqConfig(pid);
  if (rseq.address) inj.ok("rseq unregister", NR.rseq, rseq.address, rseq.length, 1, rseq.signature);
  setSigmask(pid, ~0n);
  placeScratch(inj, img.mm.vmas);
  inj.ok("close_range", NR.close_range, 0, 0xffffffff, 0);
  clearAddressSpace(inj, img.kept);
  moveVdso(inj, img.mm.vmas);
  sp.record("clear address space", since);
  sp.time("mmap VMAs", () => mapVmas(inj, img.mm, img.fill, r.sharedObjects, img.kept));
  if (img.kept.size) sp.time("inherited pages", () => dropUninherited(inj, img.kept, img.pagemap));
  r.bytes += sp.time("pages", () => fillPages(inj, img.pagemap, r.images.path(`pages-${pid}.img`), img.fill));
  sp.time("mm fields", () => setMmFields(inj, img.mm));
  // made inside the process while it still has our privileges; registered after the last injection
  const uffd = r.lazy ? sp.time("userfaultfd", () => createTargetUffd(inj)) : null;
  sp.time("fds", () => installFds(inj, img.fds, r.opened));
  since = performance.now();
  const b = inj.batch();
  restoreSigactions(b, img.core, inherited);
  restoreRlimits(b, img.core, inherited);
  restoreItimers(b, img.core);
  restoreProcessAttrs(b, img.core, r.shellJob);
  b.run();
  restorePosixTimers(inj, img.core);
  sp.record("signals, timers, attributes", since);
  // Children now: they inherit this process's session and group, as they did at first, and its
  // memory, filled above and untouched since (injected calls use the scratch area only).
  for (const [childPid, child] of r.tree.procs) {
    if (child.core.ppid !== pid || childPid === r.tree.inventory.rootPid) continue;
    const childInj = cloneProcess(inj, childPid);
    r.tasks.push({ pid: childPid, tid: childPid });
    build(r, childInj, img.core); // a child starts with what this process has now
  }
  for (const [zombiePid, zombie] of r.tree.zombies) {
    if (zombie.ppid === pid) makeZombie(inj, zombiePid, zombie.exitStatus ?? 0);
  }
  // Every other thread: cloned inside the process with its TID, then given its own state.
  since = performance.now();
  const [mainThread, ...others] = img.core.threads;
  const threads = [{ image: mainThread, inj }];
  for (const t of others) {
    threads.push({ image: t, inj: cloneThread(inj, t.tid) });
    r.tasks.push({ pid, tid: t.tid });
  }
  // Each thread in one batch: its state, then (the main thread's) the pending signals, then its
  // credentials. The main thread goes last: it queues signals for the others.
  for (const t of [...threads.slice(1), threads[0]]) {
    const tb = t.inj.batch();
    restoreThreadState(tb, t.image);
    if (t.inj === inj) restorePending(tb, img.core);
    restoreCreds(tb, img.core);
    tb.run();
  }
  inj.unmapScratch();
  sp.record("threads, pending signals, credentials", since);
  if (uffd) {
    let registered;
    try {
      registered = sp.time("userfaultfd register", () => registerLazyRanges(pid, uffd, img.mm.vmas));
    } catch (e) {
      fs.closeSync(uffd.fd);
      throw e;
    }
    sp.time("userfaultfd hand-off", () => r.lazy!(registered)); // owns the fd from here, whatever happens
  }
  since = performance.now();
  // Last, each thread at its stop: the registers and mask it had.
  for (const { image } of threads) {
    if (image.xstate.length) setRegset(image.tid, NT_X86_XSTATE, image.xstate);
    setRegs(image.tid, new Regs(Buffer.from(image.regs)));
    setSigmask(image.tid, readU64le(image.sigmask));
  }
  sp.record("registers", since);
  r.injected += threads.reduce((n, t) => n + t.inj.count, 0);
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
