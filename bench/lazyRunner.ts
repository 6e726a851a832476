/**
 * The lazy scenario's processes (bench/lazy.ts), each a Node process of its own inside one of the
 * two hosts, started before the measured work so that Node's start-up is not counted:
 *
 *   lazyRunner.js source --pid P --images DIR --listen A:P --key F   (host A: dump --lazy, page server)
 *   lazyRunner.js dest --images DIR --page-server A:P --key F        (host B: restore --lazy + the daemon)
 *   lazyRunner.js echo --listen A:P --key F                          (host A: echoes, TCP on P, TLS on P+1)
 *   lazyRunner.js rtt --to A:P --bytes N --key F                     (host B: round trips; UFFDIO_COPY of N bytes)
 *
 * Each says {"event":"loaded"} once its modules are in, waits for a {"go":...} line on stdin for
 * the work that is timed, and reports JSON lines on stdout. When its stdin closes (the benchmark
 * went away) it ends, killing what it restored; the host's teardown kills the rest.
 */
import { parseArgs } from "node:util";
import { emit, peakRssMiB, requireOptions, rssMiB, runMode } from "./runnerProcess.js";
import type net from "node:net";
import type { LazySummary } from "../src/lazy/stats.js";
import type { SourceStats } from "../src/lazy/pageServer.js";
import type { Transport } from "../src/net/transport.js";

export interface LoadedReport {
  event: "loaded";
  rssBeforeMiB: number;
}

export interface SourceReport {
  event: "served";
  delivered: boolean;
  reason?: string;
  /** the dump of everything but the lazy memory: from the freeze until the images are written */
  dumpFrozenMs: number;
  /** from "go" until the page server listened */
  readyMs: number;
  stats: SourceStats;
  peakRssMiB: number;
}

export interface DestRestoredReport {
  event: "restored";
  /** the restored process, as host B calls it */
  pid: number;
  /** from "go" (the page server is up) until the process runs: connect, handshake, restore */
  opMs: number;
}

export interface DestTransferredReport {
  event: "transferred";
  lazy: LazySummary;
  /** getrusage maxrss of the destination process: restore and lazy-pages daemon, Node included */
  peakRssMiB: number;
}

/** Round trips to host A with ferry's own transports, and the destination's UFFDIO_COPY (bandwidth: bench/link.ts). */
export interface RttReport {
  event: "rtt";
  /** median round trip of a 32-byte message on an idle connection (µs) */
  tcpRttUs: number;
  tlsRttUs: number;
  /** UFFDIO_COPY from a 4 MiB window into fresh memory (bench/uffdCopy.ts), best of 3 */
  uffdCopyColdGBps: number;
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    pid: { type: "string" }, images: { type: "string" }, listen: { type: "string" }, "page-server": { type: "string" },
    to: { type: "string" }, bytes: { type: "string" }, key: { type: "string" },
  },
});

const need = requireOptions("lazyRunner", values);

/** stdin: one JSON command per line; its end means the benchmark is gone. */
const commands: { go?: unknown }[] = [];
let wakeCommand: (() => void) | null = null;
let onStdinEnd: () => void = () => process.exit(1);
{
  let pending = "";
  process.stdin.setEncoding("utf8").on("data", (chunk: string) => {
    pending += chunk;
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      commands.push(JSON.parse(pending.slice(0, nl)) as { go?: unknown });
      pending = pending.slice(nl + 1);
    }
    wakeCommand?.();
  });
  process.stdin.on("end", () => onStdinEnd());
}

async function go(): Promise<void> {
  while (!commands.some((c) => "go" in c)) await new Promise<void>((r) => (wakeCommand = r));
  commands.splice(commands.findIndex((c) => "go" in c), 1);
}

async function transport(): Promise<Transport> {
  const { openTransport } = await import("../src/net/transport.js");
  return openTransport({ keyFile: need("key") });
}

async function runSource(): Promise<void> {
  const { serveLazy } = await import("../src/lazy/source.js");
  const { parseEndpoint } = await import("../src/net/endpoint.js");
  const tls = await transport();
  const abort = new AbortController();
  onStdinEnd = () => abort.abort(); // the source stays frozen; the host's teardown kills it
  emit({ event: "loaded", rssBeforeMiB: rssMiB() } satisfies LoadedReport);
  await go();
  const t0 = performance.now();
  const r = await serveLazy({
    pid: Number(need("pid")), images: need("images"), listen: parseEndpoint(need("listen")), transport: tls,
    retryForMs: 10_000, signal: abort.signal, log: (line) => process.stderr.write(`source: ${line}\n`),
    onReady: () => emit({ event: "ready", readyMs: performance.now() - t0 }),
  });
  const report: SourceReport = {
    event: "served", delivered: r.delivered, reason: r.reason, dumpFrozenMs: r.dump.frozenMs, readyMs: r.readyMs,
    stats: r.stats, peakRssMiB: peakRssMiB(),
  };
  emit(report);
  process.exit(0);
}

async function runDest(): Promise<void> {
  const { restoreLazyWithServer } = await import("../src/lazy/destination.js");
  const { waitForExit } = await import("../src/restore/index.js");
  const { parseEndpoint } = await import("../src/net/endpoint.js");
  const tls = await transport();
  let restoredPid = 0;
  onStdinEnd = () => {
    try {
      if (restoredPid) process.kill(restoredPid, "SIGKILL");
    } catch { /* gone */ }
    process.exit(1);
  };
  emit({ event: "loaded", rssBeforeMiB: rssMiB() } satisfies LoadedReport);
  await go();
  const t0 = performance.now();
  const { restored, transfer } = await restoreLazyWithServer({
    images: need("images"), pageServer: parseEndpoint(need("page-server")), transport: tls, retryForMs: 10_000,
    log: (line) => process.stderr.write(`dest: ${line}\n`),
  });
  restoredPid = restored.pid;
  emit({ event: "restored", pid: restored.pid, opMs: performance.now() - t0 } satisfies DestRestoredReport);
  const exit = waitForExit(restored.pid);
  const lazy = await transfer;
  emit({ event: "transferred", lazy, peakRssMiB: peakRssMiB() } satisfies DestTransferredReport);
  emit({ event: "exited", pid: restored.pid, code: await exit });
  process.exit(0);
}

/** "E" as the first byte: the server echoes everything back (the round-trip probe). */
async function runEcho(): Promise<void> {
  const { plainTcp } = await import("../src/net/transport.js");
  const { parseEndpoint } = await import("../src/net/endpoint.js");
  const ep = parseEndpoint(need("listen"));
  const echo = (s: net.Socket) => {
    s.on("error", () => s.destroy());
    s.once("data", (first: Buffer) => {
      if (first[0] !== 0x45 /* E */) return void s.destroy();
      if (first.length > 1) s.write(first.subarray(1));
      s.on("data", (d: Buffer) => s.write(d));
    });
  };
  await plainTcp.listen(ep, echo);
  await (await transport()).listen({ host: ep.host, port: ep.port + 1 }, echo);
  onStdinEnd = () => process.exit(0);
  emit({ event: "loaded", rssBeforeMiB: rssMiB() } satisfies LoadedReport);
}

async function runRtt(): Promise<void> {
  const { plainTcp } = await import("../src/net/transport.js");
  const { parseEndpoint } = await import("../src/net/endpoint.js");
  const { uffdCopyColdMs } = await import("./uffdCopy.js");
  const ep = parseEndpoint(need("to"));
  const bytes = Number(need("bytes"));
  const tcpRttUs = await echoRttUs(await plainTcp.connect(ep), 200);
  const tlsRttUs = await echoRttUs(await (await transport()).connect({ host: ep.host, port: ep.port + 1 }), 200);
  const window = Buffer.alloc(4 << 20, 0x3c);
  let uffdMs = Infinity;
  for (let i = 0; i < 3; i++) uffdMs = Math.min(uffdMs, uffdCopyColdMs(window, bytes, window.length));
  emit({ event: "rtt", tcpRttUs, tlsRttUs, uffdCopyColdGBps: bytes / (uffdMs * 1e6) } satisfies RttReport);
  process.exit(0);
}

/** Median round trip of `n` 32-byte messages, one at a time (µs). */
function echoRttUs(s: net.Socket, n: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const msg = Buffer.alloc(32, 0x61);
    const times: number[] = [];
    let got = 0, t = 0;
    const send = () => {
      t = performance.now();
      s.write(msg);
    };
    s.on("error", reject);
    s.on("data", (d: Buffer) => {
      got += d.length;
      if (got < msg.length) return;
      got -= msg.length;
      times.push((performance.now() - t) * 1000);
      if (times.length < n) return send();
      s.destroy();
      times.sort((a, b) => a - b);
      resolve(times[times.length >> 1]);
    });
    s.write("E");
    send();
  });
}

const modes: Record<string, () => Promise<void>> = { source: runSource, dest: runDest, echo: runEcho, rtt: runRtt };
await runMode("lazyRunner", positionals[0], modes);
