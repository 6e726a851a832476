import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FerryError } from "../errors.js";
import { rehearse } from "../rehearsal.js";
import { dump } from "../dump/index.js";
import { childrenOf } from "../dump/tree.js";
import { processExists } from "../kernel/procfs.js";
import { NR, SIG, rawSyscall } from "../kernel/sys.js";
import { epochUsOf } from "../kernel/clock.js";
import type { Endpoint } from "../net/endpoint.js";
import type { Transport } from "../net/transport.js";
import type { LazySummary } from "../lazy/stats.js";
import { Spans } from "../spans.js";
import { Control } from "./control.js";
import { sendImages } from "./imageStream.js";
import { MCMD, MIGRATE_VERSION, parseDone, parseHelloOk, parseRestored, type Hello, type Mode, type RestoreRequest, type RestoredReply } from "./protocol.js";
import { ResumeGuard } from "./resumeGuard.js";
import { runActionScript } from "./actionScript.js";
import { CODEC, FrameCompressor, type CompressSetting } from "./compression.js";
import { PageServerHost } from "./pageServerHost.js";
import type { PageServer } from "../lazy/pageServer.js";
import { Timeline, type SwitchStep } from "./timeline.js";
import { runPrecopy, type PrecopyResult } from "./precopy.js";
import { summarize, type MigrateSummary } from "./summary.js";

export interface MigrateOptions {
  pid: number;
  to: Endpoint;
  /** how connections are made (TLS with the pre-shared key, or plain TCP on loopback) */
  transport: Transport;
  mode?: Mode;
  /** downtime budget of pre-copy and hybrid, ms (default 50) */
  maxDowntimeMs?: number;
  maxRounds?: number;
  /** lazy, hybrid: how long a lost destination may take to come back to the page server (default 10 s) */
  retryForMs?: number;
  /** compress page data on the control connection: when it pays on the link (auto, the default), always, never */
  compress?: CompressSetting;
  /** CRIU-style action script, run at post-dump (actionScript.ts) */
  actionScript?: string;
  /** keep the source's images here (they are removed otherwise) */
  keepImages?: string;
  timeline?: Timeline;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/**
 * `ferry migrate`: move a process to the host where `ferry agent` listens, in one connection
 * (plus the lazy page server's two for lazy and hybrid). Images go straight from a tmpfs
 * directory over the connection.
 *
 * Who runs the process, whatever fails: until RESTORE is written the source does (a failure lets
 * it run on here, unfrozen, its write-protection gone with the tracker; a resume guard does it
 * if ferry itself is killed). Once RESTORE is written the destination may run it, so the source
 * copy stays frozen until the destination says how it ended: it is killed once the destination
 * runs the process (and holds all of its memory); it runs here again only when the destination
 * says nothing runs there (an ERROR before the resume, or a lazy transfer that failed and killed
 * its copy). Without word from the destination, it stays frozen and the error says so (`ferry
 * resume PID` runs it here again, once the destination's copy is known to be dead): never two.
 */
export async function migrate(opts: MigrateOptions): Promise<MigrateSummary> {
  const mode = opts.mode ?? "hybrid";
  const tl = opts.timeline ?? new Timeline();
  if (mode !== "stop-copy" && childrenOf(opts.pid).length) {
    throw new FerryError("FERRY_UNSUPPORTED", `process ${opts.pid} has child processes: only --mode stop-copy moves process trees so far`);
  }
  await rehearse("dump", mode !== "stop-copy", opts.log); // before anything waits on us
  tl.phase("connect");
  const socket = await opts.transport.connect(opts.to).catch((e: Error) => {
    throw new FerryError("FERRY_AGENT_UNREACHABLE", `no ferry agent at ${opts.to.host}:${opts.to.port} (${e.message}): start \`ferry agent --listen ADDR:PORT\` on the destination`);
  });
  const control = new Control(socket);
  const images = opts.keepImages ?? fs.mkdtempSync(path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), "ferry-migrate-"));
  if (opts.keepImages) fs.mkdirSync(images, { recursive: true });
  /** frozen by us, and ours to resume if the migration fails */
  let stopped = false;
  /** RESTORE written: the destination may run the process */
  let handedOver = false;
  let guard: ResumeGuard | null = null;
  let precopy: PrecopyResult | null = null;
  let host: PageServerHost | null = null;
  let server: PageServer | null = null;
  const sample = () => tl.sample({ bytesSent: control.bytesOut + (server?.stats.bytesSent ?? 0), faults: server?.stats.faultRequests ?? 0, pagesArrived: server?.stats.pagesSent ?? 0 });
  const sampler = setInterval(sample, 20);
  const onAbort = () => {
    control.close();
    server?.abandon("interrupted");
  };
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    guard = ResumeGuard.start(opts.pid, opts.keepImages ? "" : images);
    const compress = opts.compress ?? "auto";
    // listening now, not during the downtime: the agent connects at once (its port goes with HELLO, and RESTORE)
    if (mode === "lazy" || mode === "hybrid") host = await PageServerHost.listen((socket.localAddress ?? "0.0.0.0").replace(/^::ffff:/, ""), opts.transport);
    const hello: Hello = { version: MIGRATE_VERSION, mode, pid: opts.pid, codecs: compress === "off" ? [] : [CODEC], pageServerPort: host?.port };
    await control.sendJson(MCMD.HELLO, hello);
    const ok = parseHelloOk((await control.expect(MCMD.HELLO_OK, 10_000)).payload);
    if (ok.version !== MIGRATE_VERSION) throw new FerryError("FERRY_VERSION", `the agent speaks migration protocol ${ok.version}, this ferry ${MIGRATE_VERSION}`);
    if (compress === "on" && ok.codec !== CODEC) opts.log?.(`the agent cannot decode ${CODEC}: page data goes uncompressed`);
    control.compressor = new FrameCompressor(compress, ok.codec ?? null);
    if (mode === "precopy" || mode === "hybrid") {
      tl.phase("precopy");
      precopy = await runPrecopy({ pid: opts.pid, control, timeline: tl, maxDowntimeMs: opts.maxDowntimeMs ?? 50, maxRounds: opts.maxRounds ?? 8, signal: opts.signal });
    }
    tl.phase("dump");
    const lazyDump = mode !== "stop-copy";
    guard.frozen();
    const sp = new Spans(tl.t0);
    const d = dump({ pid: opts.pid, images, lazy: lazyDump, leaveStopped: true, spans: sp, lazyWhole: precopy?.tracked });
    stopped = true;
    runActionScript(opts.actionScript, "post-dump", opts.pid);
    const t0Us = epochUsOf(tl.t0);
    tl.freezeMs = (d.frozenAtUs - t0Us) / 1000;
    let request: RestoreRequest = {};
    let lazyRuns = d.lazyRuns;
    tl.phase("switch-over");
    if (precopy) ({ request, lazyRuns } = await sp.timeAsync("pre-copy switch-over", () => precopy!.switchOver(images, mode === "precopy")));
    tl.phase("images");
    if (host) request.pageServerPort = host.port;
    const imageBytes = await sp.timeAsync("send images", () => sendImages(control, images));
    if (opts.signal?.aborted) throw new FerryError("FERRY_INTERRUPTED", "interrupted");
    tl.phase("restore");
    // the point of no return: from now on the destination may run the process
    guard.standDown();
    handedOver = true;
    const tAsk = performance.now();
    await control.sendJson(MCMD.RESTORE, request);
    let restored: RestoredReply;
    try {
      // while the agent gets ready (its first step is to reach this page server, which waits meanwhile)
      if (host) server = await sp.timeAsync("page server", () => host!.serve(opts.pid, lazyRuns, opts.retryForMs ?? 10_000, opts.log));
      restored = parseRestored((await control.expect(MCMD.RESTORED)).payload);
    } catch (e) {
      if ((e as FerryError).code === "FERRY_AGENT") handedOver = false; // an ERROR: nothing runs there (sent only before a resume)
      throw e;
    }
    sp.record("restore at the destination", tAsk);
    tl.switchSteps = [...sp.steps.map((x) => ({ where: "source" as const, ...x })), ...agentSteps(restored, t0Us)];
    tl.resumeMs = (restored.resumedAtUs - t0Us) / 1000;
    let lazy: LazySummary | null = null;
    if (server) {
      tl.phase("lazy");
      const outcome = await server.outcome;
      // the agent's summary; its connection may be lost while the lazy transfer goes on by its own
      lazy = await control.expect(MCMD.DONE, outcome.delivered ? 5_000 : 15_000).then((f) => parseDone(f.payload), () => null);
      if (!outcome.delivered) {
        if (outcome.destinationGaveUp || lazy?.outcome === "failed") {
          handedOver = false; // the destination killed its copy and said so: ours runs on
          throw new FerryError("FERRY_LAZY_FAILED", `the destination gave up the lazy transfer (${lazy?.error ?? outcome.reason}): process ${opts.pid} runs on here`);
        }
        throw new FerryError("FERRY_NOT_DELIVERED", `${outcome.reason}; process ${opts.pid} is kept frozen here: \`ferry resume ${opts.pid}\` runs it here again (only if the destination's copy is dead)`);
      }
    } else if (mode === "precopy") {
      // the agent installs the pages after the resume: its copy holds all of its memory only
      // once it says so (it kills its copy rather than let it run on anything else)
      tl.phase("install");
      lazy = await control.expect(MCMD.DONE, 15_000).then((f) => parseDone(f.payload), () => null);
      if (lazy?.outcome === "failed") {
        handedOver = false; // the destination killed its copy and said so: ours runs on
        throw new FerryError("FERRY_LAZY_FAILED", `the destination could not install the pre-copied pages (${lazy.error ?? "no reason given"}): process ${opts.pid} runs on here`);
      }
      if (!lazy) throw new FerryError("FERRY_NOT_DELIVERED", `the destination did not say it holds all of process ${opts.pid}'s memory; the process is kept frozen here: \`ferry resume ${opts.pid}\` runs it here again (only if the destination's copy is dead)`);
      rawSyscall(NR.kill, opts.pid, SIG.KILL);
    } else {
      rawSyscall(NR.kill, opts.pid, SIG.KILL);
    }
    stopped = false;
    sample();
    tl.phase("done");
    return summarize({
      mode, pid: opts.pid, timeline: tl, dump: d, imageBytes, controlBytes: control.bytesOut, restored, lazy, precopy,
      pageServer: server?.stats ?? null, compression: control.compressor.summary(),
    });
  } catch (e) {
    tl.phase("failed");
    server?.abandon("the migration failed"); // the ptrace hold goes, the group stop stays
    if (!stopped) {
      if (processExists(opts.pid)) throw new FerryError((e as FerryError).code ?? "FERRY_MIGRATE", `${(e as Error).message}; process ${opts.pid} runs on here as before`);
      throw e;
    }
    if (handedOver) {
      if ((e as FerryError).code === "FERRY_NOT_DELIVERED") throw e;
      throw new FerryError("FERRY_IN_DOUBT", `${(e as Error).message} after the switch-over: process ${opts.pid} may run at the destination, so it is kept frozen here: \`ferry resume ${opts.pid}\` runs it here again (only if the destination's copy is dead)`);
    }
    rawSyscall(NR.kill, opts.pid, SIG.CONT); // the destination never ran it: it runs on here
    if ((e as FerryError).code === "FERRY_LAZY_FAILED") throw e;
    throw new FerryError((e as FerryError).code ?? "FERRY_MIGRATE", `${(e as Error).message}; process ${opts.pid} runs on here`);
  } finally {
    clearInterval(sampler);
    opts.signal?.removeEventListener("abort", onAbort);
    precopy?.close();
    host?.close();
    control.close();
    if (!opts.keepImages) fs.rmSync(images, { recursive: true, force: true });
    guard?.close();
  }
}

/** The agent's steps on our timeline (the two hosts' clocks are taken to agree, as for the downtime). */
function agentSteps(r: RestoredReply, t0Us: number): SwitchStep[] {
  if (!r.steps || r.stepsOriginUs === undefined) return [];
  const offset = (r.stepsOriginUs - t0Us) / 1000;
  return r.steps.map((s) => ({ where: "destination", name: s.name, at: s.at + offset, ms: s.ms }));
}
