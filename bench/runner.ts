/**
 * One measured operation in a Node process of its own, started by bench/run.ts:
 *
 *   runner.js dump --pid P --images DIR
 *   runner.js restore --images DIR        (then waits for the restored process, its child, to exit)
 *   runner.js limits --pid P --addr A --bytes N --scratch DIR
 *   runner.js warm --mib N                 (touch N MiB of fresh memory, then exit and free it)
 *   runner.js link-recv --listen A:P --transport tcp|tls --key F --bytes N --tries T   (in hB)
 *   runner.js link-send --to A:P --transport tcp|tls --key F --bytes N --tries T       (in hA)
 *
 * It reports JSON lines on stdout: the operation's own wall time (Node start-up excluded), ferry's
 * figures, and this process's RSS before the operation and at its peak (ferry's RSS is this whole
 * process: Node plus the engine). If its stdin closes (the benchmark died), it kills what it restored.
 */
import { parseArgs } from "node:util";
import { emit, peakRssMiB, requireOptions, rssMiB, runMode } from "./runnerProcess.js";

export interface RunnerUsage {
  /** CPU time (user + system) this process used during the operation: near opMs when nothing else ran on its CPU */
  opCpuMs: number;
  /** RSS after Node and the engine's modules loaded, just before the operation */
  rssBeforeMiB: number;
  /** peak RSS of this process over its whole life (getrusage ru_maxrss) */
  peakRssMiB: number;
}

export interface DumpReport extends RunnerUsage {
  event: "dumped";
  pid: number;
  pages: number;
  zeroPagesSkipped: number;
  frozenMs: number;
  durationMs: number;
  injectedSyscalls: number;
  /** wall time of the dump() call */
  opMs: number;
  /** epoch ms (sub-ms precise) at which the process was frozen */
  frozenAtEpochMs: number;
}

export interface RestoreReport extends RunnerUsage {
  event: "restored";
  pid: number;
  durationMs: number;
  bytes: number;
  injectedSyscalls: number;
  /** wall time of the restore() call: when it returns the process runs */
  opMs: number;
  /** epoch ms at which the process runs again */
  runningAtEpochMs: number;
}

export interface WarmReport {
  event: "warmed";
  mib: number;
  ms: number;
  /** first-touch bandwidth of the slowest and the median 64 MiB piece */
  slowestGBps: number;
  medianGBps: number;
}

export interface ExitReport {
  event: "exited";
  pid: number;
  code: number;
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    pid: { type: "string" }, images: { type: "string" }, addr: { type: "string" },
    bytes: { type: "string" }, scratch: { type: "string" }, mib: { type: "string" },
    listen: { type: "string" }, to: { type: "string" }, transport: { type: "string" }, key: { type: "string" }, tries: { type: "string" },
  },
});

const epochMs = () => performance.timeOrigin + performance.now();
const cpuMsSince = (start: NodeJS.CpuUsage) => {
  const { user, system } = process.cpuUsage(start);
  return (user + system) / 1000;
};

const need = requireOptions("runner", values);

async function runDump(): Promise<void> {
  const { dump } = await import("../src/dump/index.js");
  const pid = Number(need("pid"));
  const rssBeforeMiB = rssMiB();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = dump({ pid, images: need("images") });
  const opMs = performance.now() - t0;
  const report: DumpReport = {
    event: "dumped", ...r, opMs, opCpuMs: cpuMsSince(cpu0), frozenAtEpochMs: epochMs() - r.frozenMs, rssBeforeMiB, peakRssMiB: peakRssMiB(),
  };
  emit(report);
}

async function runRestore(): Promise<void> {
  const { restore, waitForExit } = await import("../src/restore/index.js");
  const rssBeforeMiB = rssMiB();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = restore({ images: need("images") });
  const opMs = performance.now() - t0;
  const report: RestoreReport = {
    event: "restored", ...r, opMs, opCpuMs: cpuMsSince(cpu0), runningAtEpochMs: epochMs(), rssBeforeMiB, peakRssMiB: peakRssMiB(),
  };
  emit(report);
  // The benchmark talks to the process directly (SIGTERM); if the benchmark goes away, so does it.
  process.stdin.on("end", () => {
    try {
      process.kill(r.pid, "SIGKILL");
    } catch { /* already gone */ }
  });
  process.stdin.resume();
  const code = await waitForExit(r.pid);
  const exit: ExitReport = { event: "exited", pid: r.pid, code };
  emit(exit);
  process.exit(0);
}

async function runLimits(): Promise<void> {
  const { measureLimits } = await import("./limits.js");
  const limits = measureLimits({ pid: Number(need("pid")), addr: Number(need("addr")) }, Number(need("bytes")), need("scratch"));
  emit({ event: "limits", ...limits });
}

/**
 * This VM backs guest memory lazily: a page the hypervisor has not backed yet costs a host fault on
 * first touch (several times slower than recycled memory). Touching and freeing memory before a
 * cycle makes the victim, the images and the restored process land on backed memory, so the
 * figures are ferry's and not the hypervisor's. The touch rates say how large the effect is.
 */
async function runWarm(): Promise<void> {
  const piece = 64 << 20;
  const window = Buffer.alloc(4 << 20, 0x77);
  const pieces = Math.ceil((Number(need("mib")) * 2 ** 20) / piece);
  const keep: Buffer[] = [];
  const rates: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < pieces; i++) {
    const fresh = Buffer.allocUnsafeSlow(piece);
    const t = performance.now();
    for (let off = 0; off < piece; off += window.length) window.copy(fresh, off);
    rates.push(piece / ((performance.now() - t) * 1e6));
    keep.push(fresh); // all of it at once: freed together when this process exits
  }
  rates.sort((a, b) => a - b);
  const report: WarmReport = {
    event: "warmed", mib: (pieces * piece) / 2 ** 20, ms: performance.now() - t0,
    slowestGBps: rates[0], medianGBps: rates[rates.length >> 1],
  };
  emit(report);
}

/** The link between the two hosts (bench/link.ts): the receiving end says when it listens. */
async function runLinkReceive(): Promise<void> {
  const { linkReceive } = await import("./link.js");
  await linkReceive(need("listen"), need("transport"), need("key"), Number(need("bytes")), Number(need("tries")), () => emit({ event: "listening" }));
  emit({ event: "received" });
}

async function runLinkSend(): Promise<void> {
  const { linkSend } = await import("./link.js");
  const gbps = await linkSend(need("to"), need("transport"), need("key"), Number(need("bytes")), Number(need("tries")));
  emit({ event: "link", gbps });
}

const modes: Record<string, () => Promise<void>> = {
  dump: runDump, restore: runRestore, limits: runLimits, warm: runWarm, "link-recv": runLinkReceive, "link-send": runLinkSend,
};
await runMode("runner", positionals[0], modes);
