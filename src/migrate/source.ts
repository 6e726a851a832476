import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FerryError } from "../errors.js";
import { dump } from "../dump/index.js";
import { childrenOf } from "../dump/tree.js";
import { NR, SIG, rawSyscall } from "../kernel/sys.js";
import { epochUsOf } from "../kernel/clock.js";
import type { Endpoint } from "../net/endpoint.js";
import type { Transport } from "../net/transport.js";
import type { LazySummary } from "../lazy/stats.js";
import { Control } from "./control.js";
import { sendImages } from "./imageStream.js";
import { MCMD, MIGRATE_VERSION, parse, type Mode, type RestoreRequest, type RestoredReply } from "./protocol.js";
import { PageServerHost } from "./pageServerHost.js";
import type { PageServer } from "../lazy/pageServer.js";
import { Timeline, type SwitchStep } from "./timeline.js";
import { runPrecopy, type PrecopyResult } from "./precopy.js";
import { summarize, type MigrateSummary } from "./summary.js";
import { Spans } from "../spans.js";

export interface MigrateOptions {
  pid: number;
  to: Endpoint;
  /** how connections are made (TLS with the pre-shared key, or plain TCP on loopback) */
  transport: Transport;
  mode?: Mode;
  /** downtime budget of pre-copy and hybrid, ms (default 50) */
  maxDowntimeMs?: number;
  maxRounds?: number;
  /** keep the source's images here (they are removed otherwise) */
  keepImages?: string;
  timeline?: Timeline;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/**
 * `ferry migrate`: move a process to the host where `ferry agent` listens, in one connection
 * (plus the lazy page server's two for lazy and hybrid). Images go straight from a tmpfs
 * directory over the connection; the source is killed only once the destination runs the process
 * (and holds all of its memory), and is let run again here if the destination fails before that.
 */
export async function migrate(opts: MigrateOptions): Promise<MigrateSummary> {
  const mode = opts.mode ?? "hybrid";
  const tl = opts.timeline ?? new Timeline();
  if (mode !== "stop-copy" && childrenOf(opts.pid).length) {
    throw new FerryError("FERRY_UNSUPPORTED", `process ${opts.pid} has child processes: only --mode stop-copy moves process trees so far`);
  }
  tl.phase("connect");
  const socket = await opts.transport.connect(opts.to).catch((e: Error) => {
    throw new FerryError("FERRY_AGENT_UNREACHABLE", `no ferry agent at ${opts.to.host}:${opts.to.port} (${e.message}): start \`ferry agent --listen ADDR:PORT\` on the destination`);
  });
  const control = new Control(socket);
  const images = opts.keepImages ?? fs.mkdtempSync(path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), "ferry-migrate-"));
  if (opts.keepImages) fs.mkdirSync(images, { recursive: true });
  let stopped = false; // the source is frozen by us: resume it if we fail before the destination runs it
  let delivered = false;
  let precopy: PrecopyResult | null = null;
  let host: PageServerHost | null = null;
  let server: PageServer | null = null;
  const sample = () => tl.sample({ bytesSent: control.bytesOut + (server?.stats.bytesSent ?? 0), faults: server?.stats.faultRequests ?? 0, pagesArrived: server?.stats.pagesSent ?? 0 });
  const sampler = setInterval(sample, 20);
  const onAbort = () => control.close();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await control.sendJson(MCMD.HELLO, { version: MIGRATE_VERSION, mode, pid: opts.pid });
    await control.expect(MCMD.HELLO_OK, 10_000);
    // listening now, not during the downtime: the port goes with RESTORE
    if (mode === "lazy" || mode === "hybrid") host = await PageServerHost.listen((socket.localAddress ?? "0.0.0.0").replace(/^::ffff:/, ""), opts.transport);
    if (mode === "precopy" || mode === "hybrid") {
      tl.phase("precopy");
      precopy = await runPrecopy({ pid: opts.pid, control, timeline: tl, maxDowntimeMs: opts.maxDowntimeMs ?? 50, maxRounds: opts.maxRounds ?? 8, signal: opts.signal });
    }
    tl.phase("dump");
    const lazyDump = mode !== "stop-copy";
    const sp = new Spans(tl.t0);
    const d = dump({ pid: opts.pid, images, lazy: lazyDump, leaveStopped: true, spans: sp });
    stopped = true;
    const t0Us = epochUsOf(tl.t0);
    tl.freezeMs = (d.frozenAtUs - t0Us) / 1000;
    let request: RestoreRequest = {};
    let lazyRuns = d.lazyRuns;
    tl.phase("switch-over");
    if (precopy) ({ request, lazyRuns } = await sp.timeAsync("pre-copy switch-over", () => precopy!.switchOver(images, mode === "precopy")));
    tl.phase("images");
    if (host) request.pageServerPort = host.port;
    const imageBytes = await sp.timeAsync("send images", () => sendImages(control, images));
    tl.phase("restore");
    const tAsk = performance.now();
    await control.sendJson(MCMD.RESTORE, request);
    let restored: RestoredReply;
    let lazy: LazySummary | null = null;
    try {
      // while the agent gets ready (its first step is to reach this page server, which waits meanwhile)
      if (host) server = await sp.timeAsync("page server", () => host!.serve(opts.pid, lazyRuns, opts.log));
      restored = parse<RestoredReply>((await control.expect(MCMD.RESTORED)).payload);
      sp.record("restore at the destination", tAsk);
      tl.switchSteps = [...sp.steps.map((x) => ({ where: "source" as const, ...x })), ...agentSteps(restored, t0Us)];
      tl.resumeMs = (restored.resumedAtUs - t0Us) / 1000;
      // it runs there now: from here on a failure leaves our copy frozen, never running twice
      if (server) stopped = false;
      if (server) {
        tl.phase("lazy");
        const [outcome, done] = await Promise.all([server.outcome, control.expect(MCMD.DONE)]);
        lazy = parse<LazySummary | null>(done.payload);
        if (!outcome.delivered) {
          throw new FerryError("FERRY_NOT_DELIVERED", `${outcome.reason}; process ${opts.pid} is kept frozen here: \`ferry resume ${opts.pid}\` runs it here again (only if the destination's copy is dead)`);
        }
      } else {
        rawSyscall(NR.kill, opts.pid, SIG.KILL);
        stopped = false;
      }
      delivered = true;
    } finally {
      if (!delivered && server) server.abandon("the migration failed");
    }
    sample();
    tl.phase("done");
    return summarize({ mode, pid: opts.pid, timeline: tl, dump: d, imageBytes, controlBytes: control.bytesOut, restored, lazy, precopy, pageServer: server?.stats ?? null });
  } catch (e) {
    tl.phase("failed");
    if (stopped) rawSyscall(NR.kill, opts.pid, SIG.CONT); // the destination never ran it: it runs on here
    throw e;
  } finally {
    clearInterval(sampler);
    opts.signal?.removeEventListener("abort", onAbort);
    precopy?.close();
    host?.close();
    control.close();
    if (!opts.keepImages) fs.rmSync(images, { recursive: true, force: true });
  }
}

/** The agent's steps on our timeline (the two hosts' clocks are taken to agree, as for the downtime). */
function agentSteps(r: RestoredReply, t0Us: number): SwitchStep[] {
  if (!r.steps || r.stepsOriginUs === undefined) return [];
  const offset = (r.stepsOriginUs - t0Us) / 1000;
  return r.steps.map((s) => ({ where: "destination", name: s.name, at: s.at + offset, ms: s.ms }));
}
