import os from "node:os";
import { FerryError } from "../errors.js";
import { NR, PAGE_SIZE, SIG, sys } from "../kernel/sys.js";
import { setSigmask, waitTask, WALL } from "../kernel/ptrace.js";
import { readVmas, type Vma } from "../kernel/procfs.js";
import { Injector, SCRATCH_SIZE } from "../kernel/inject.js";
import { vdsoIdentity } from "../kernel/vdso.js";
import { epochUsOf } from "../kernel/clock.js";
import { ImageDir, FORMAT_VERSION, warmImageCodecs } from "../images/store.js";
import { PagesWriter } from "../images/pages.js";
import { u64le, type Inventory, type LazyRunImage, type VmaImage } from "../images/types.js";
import { validateTarget } from "./seize.js";
import { dumpThread, dumpCore } from "./core.js";
import { freezeTree, parentIn, release, type FrozenProcess } from "./tree.js";
import { describeVma, dumpMmFields } from "./mm.js";
import { dumpPages } from "./pageStream.js";
import { inheritedPagesOfTree, sharedWithChildren } from "./inherited.js";
import { FileTable } from "../files/registry.js";
import { spawnHolder } from "../files/tcpHolder.js";
import { planLazyDump, writeEagerPages } from "../lazy/plan.js";
import { Spans } from "../spans.js";

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
  /**
   * Keep the dumped TCP connections alive (a holder process, see files/tcpHolder.ts) for this many
   * seconds after the process is killed, until a restore from the same directory takes them back.
   */
  holdTcpSeconds?: number;
  /** records how long each step took */
  spans?: Spans;
  /** lazy: mappings inside these ranges go whole into the lazy runs (see planLazyDump) */
  lazyWhole?: { start: number; end: number }[];
}

export interface DumpResult {
  pid: number;
  /** when the last thread stopped (epoch µs) */
  frozenAtUs: number;
  /** lazy dumps: the root process's lazy runs (what its page server serves) */
  lazyRuns: LazyRunImage[];
  pages: number;
  zeroPagesSkipped: number;
  frozenMs: number;
  durationMs: number;
  injectedSyscalls: number;
  /** established TCP connections a holder keeps until the restore */
  heldTcpConnections: number;
}

/**
 * Freeze a process and its whole tree, write their state to an image directory, then kill them
 * (or leave them). If anything fails, every process is let go exactly as it was.
 */
export function dump(opts: DumpOptions): DumpResult {
  const t0 = performance.now();
  if (opts.lazy) opts = { ...opts, leaveStopped: true, leaveRunning: false }; // the page store
  const { pid } = opts;
  const sp = opts.spans ?? new Spans(t0);
  validateTarget(pid);
  const images = ImageDir.create(opts.images);
  warmImageCodecs(); // not while the process is frozen
  const tree = sp.time("seize", () => freezeTree(pid));
  const frozenAt = performance.now();
  if (opts.lazy && tree.length > 1) {
    for (const p of tree) release(p);
    throw new FerryError("FERRY_UNSUPPORTED", `PID ${pid} has child processes: lazy migration of process trees is not supported yet`);
  }
  let done = false;
  const table = new FileTable(images);
  try {
    const totals = { pages: 0, zero: 0, injected: 0 };
    let lazy = false;
    let lazyRuns: LazyRunImage[] = [];
    // Before any page is read: when ferry pins a page shared since fork to read it
    // (process_vm_readv), the kernel first gives the process it reads a copy of its own.
    const vmas = sp.time("maps", () => new Map(tree.filter((p) => !p.zombie).map((p) => [p.pid, readVmas(p.pid)])));
    const described = new Map([...vmas].map(([p, list]) => [p, list.map((v) => describeVma(v))]));
    const inherited = opts.lazy ? new Map<number, LazyRunImage[]>() : sp.time("inherited pages", () => inheritedPagesOfTree(tree, described));
    // A tree that goes on running keeps its pages shared: those are read without a pin.
    const shared = opts.leaveRunning || opts.leaveStopped ? sharedWithChildren(tree, inherited) : new Map<number, LazyRunImage[]>();
    for (const p of tree) {
      const r = dumpProcess(p, images, table, opts, sp, vmas.get(p.pid) ?? [], described.get(p.pid) ?? [], inherited.get(p.pid) ?? [], shared.get(p.pid) ?? []);
      totals.pages += r.pages;
      totals.zero += r.zero;
      totals.injected += r.injected;
      lazy ||= r.lazy;
      if (p.pid === pid) lazyRuns = r.lazyRuns;
    }
    const tInv = performance.now();
    const vdso = vdsoIdentity(pid, vmas.get(pid)); // the root's mappings as read at the start: its vDSO does not move
    const inventory: Inventory = {
      formatVersion: FORMAT_VERSION, ferryVersion: FERRY_VERSION, arch: os.arch(), kernel: os.release(),
      vdsoSha256: vdso.sha256, vdsoSize: vdso.size, rootPid: pid, pids: tree.map((p) => p.pid), createdMs: Date.now(),
      lazy, shellJob: !!opts.shellJob, frozenAtUs: epochUsOf(frozenAt),
    };
    images.write("files.img", "Files", { files: table.files });
    images.write("inventory.img", "Inventory", inventory); // last: its presence means complete
    sp.record("inventory", tInv);
    const killed = !opts.leaveRunning && !opts.leaveStopped;
    const hold = killed && !!opts.holdTcpSeconds && table.held.length > 0 && spawnHolder(opts.images, table.held, opts.holdTcpSeconds);
    done = true;
    const result: DumpResult = {
      pid, frozenAtUs: inventory.frozenAtUs!, lazyRuns, pages: totals.pages, zeroPagesSkipped: totals.zero, frozenMs: 0, durationMs: 0, injectedSyscalls: totals.injected,
      heldTcpConnections: hold ? table.held.length : 0,
    };
    if (opts.leaveRunning || opts.leaveStopped) table.release();
    sp.time(opts.leaveRunning || opts.leaveStopped ? "release" : "kill", () => finish(tree, opts));
    result.frozenMs = performance.now() - frozenAt;
    result.durationMs = performance.now() - t0;
    return result;
  } finally {
    if (!done) {
      table.release();
      for (const p of tree) release(p);
    }
    table.done();
  }
}

/**
 * One frozen process of the tree: core, address space, pages and fd table. The pages it still
 * shares with its parent since fork (`inherited`) are recorded, not written; those it shares
 * with its children (`shared`) are read without a pin (see PageSelection).
 */
function dumpProcess(p: FrozenProcess, images: ImageDir, table: FileTable, opts: DumpOptions, sp: Spans, vmas: Vma[], vmaImages: VmaImage[], inherited: LazyRunImage[], shared: LazyRunImage[]) {
  const { pid } = p;
  if (p.zombie) {
    images.write(`core-${pid}.img`, "Core", { pid, ...p.zombie, zombie: true });
    return { pages: 0, zero: 0, injected: 0, lazy: false, lazyRuns: [] };
  }
  let since = performance.now();
  const inj = Injector.forTask(pid, vmas);
  // Nothing may be delivered while ferry runs calls inside the task: block everything.
  for (const t of p.threads) setSigmask(t.tid, ~0n);
  inj.mapScratch(SCRATCH_SIZE);
  sp.record("scratch", since);
  let injected = 0;
  try {
    since = performance.now();
    const threads = p.threads.map((t) => {
      const tinj = t.tid === pid ? inj : inj.forThread(t.tid);
      const image = dumpThread(t.tid, tinj, t.regs, t.restarted);
      image.sigmask = u64le(t.sigmask);
      if (tinj !== inj) injected += tinj.count;
      return image;
    });
    const core = dumpCore(pid, inj, threads);
    sp.record("threads, core", since);
    const mm = sp.time("mm fields", () => dumpMmFields(pid, inj, vmaImages));
    const lazy = opts.lazy ? sp.time("lazy plan", () => planLazyDump(pid, vmaImages, core.threads, opts.lazyWhole)) : null;
    inj.unmapScratch();
    injected += inj.count;
    since = performance.now();

    const pages = new PagesWriter(images.path(`pages-${pid}.img`));
    let zero = 0;
    try {
      const ranges = (runs: LazyRunImage[]) => runs.map((r) => ({ addr: r.vaddr, len: r.nrPages * PAGE_SIZE }));
      zero = dumpPages(pid, vmaImages.filter((v) => !v.lazy), pages, { inherited: ranges(inherited), sharedWithChildren: ranges(shared) });
      if (lazy) writeEagerPages(pid, lazy, pages);
    } finally {
      pages.close();
    }
    sp.record("pages", since);
    const fds = sp.time("fds", () => table.dumpFds(pid));
    since = performance.now();
    images.write(`core-${pid}.img`, "Core", core);
    images.write(`mm-${pid}.img`, "Mm", mm);
    images.write(`pagemap-${pid}.img`, "PageMap", { runs: pages.runs, totalPages: pages.pages, zeroPagesSkipped: zero, lazyRuns: lazy?.lazyRuns ?? [], lazyPages: lazy?.lazyPages ?? 0, inheritedRuns: inherited });
    images.write(`fds-${pid}.img`, "FdTable", { fds });
    sp.record("write images", since);
    return { pages: pages.pages, zero, injected, lazy: !!lazy, lazyRuns: lazy?.lazyRuns ?? [] };
  } finally {
    if (inj.scratch) {
      try {
        inj.unmapScratch();
      } catch { /* keep the first error */ }
    }
  }
}

function finish(tree: FrozenProcess[], opts: DumpOptions): void {
  if (opts.leaveRunning || opts.leaveStopped) {
    // SIGSTOP handed to a main thread as it is let go stops its whole group.
    for (const p of tree) release(p, opts.leaveStopped ? SIG.STOP : 0);
    return;
  }
  // Children first, each reaped by its own (frozen) parent: no zombie keeps a PID the restore needs.
  const injectors = new Map<number, Injector>(); // a parent's, for each of its children
  for (const p of [...tree].reverse()) {
    sys("kill", NR.kill, p.pid, SIG.KILL);
    // The leader's exit is reported only after its threads are reaped: threads first.
    for (const t of [...p.threads].reverse()) {
      try {
        waitTask(t.tid); // the exit, as seen by its tracer
      } catch { /* already reaped */ }
    }
    const parent = parentIn(tree, p.pid);
    if (!parent) continue;
    const inj = injectors.get(parent.pid) ?? Injector.forTask(parent.pid);
    injectors.set(parent.pid, inj);
    inj.call(NR.wait4, p.pid, 0, WALL, 0);
  }
}

export { FerryError };
