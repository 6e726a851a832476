import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type net from "node:net";
import { FerryError } from "../errors.js";
import { restore, spawnRestoreStub, type RestoreStub, type Restored } from "../restore/index.js";
import { processExists } from "../kernel/procfs.js";
import { epochUsOf, realtimeUs } from "../kernel/clock.js";
import type { Endpoint } from "../net/endpoint.js";
import type { Transport } from "../net/transport.js";
import { restoreLazyWithServer } from "../lazy/destination.js";
import type { LazySummary } from "../lazy/stats.js";
import { UffdGuard, Watchdog } from "../lazy/guard.js";
import { EarlyChannels } from "../lazy/earlyLink.js";
import { Control } from "./control.js";
import { ImageReceiver } from "./imageStream.js";
import { PageStore } from "./pageStore.js";
import { MCMD, MIGRATE_VERSION, parseHello, parseMessage, parseRestoreRequest, type Hello, type HelloOk, type RestoreRequest, type RestoredReply } from "./protocol.js";
import { CODEC } from "./compression.js";
import { runActionScript } from "./actionScript.js";
import { rehearse } from "../rehearsal.js";
import { Spans, roundSteps } from "../spans.js";

export interface AgentOptions {
  listen: Endpoint;
  transport: Transport;
  /** keep each migration's images in DIR/PID-TIME instead of removing them */
  keepImages?: string;
  /** CRIU-style action script, run at post-restore (actionScript.ts) */
  actionScript?: string;
  /** serve one migration, then stop */
  once?: boolean;
  log?: (line: string) => void;
  onReady?: (address: net.AddressInfo) => void;
  onMigrated?: (r: AgentSessionResult) => void;
  onFailed?: (e: Error) => void;
  /** each step of a migration as it begins: receiving, restore, running, lazy, done, failed */
  onPhase?: (phase: AgentPhase, pid: number) => void;
  /** lazy, hybrid: how long a lost page server may take to come back before the process is killed (default 10 s) */
  retryForMs?: number;
  /** lazy, hybrid: cap of the background stream, bytes/s */
  maxRate?: number;
  signal?: AbortSignal;
}

export type AgentPhase = "receiving" | "restore" | "running" | "lazy" | "done" | "failed";

export interface AgentSessionResult {
  pid: number;
  mode: Hello["mode"];
  imageBytes: number;
  precopiedPages: number;
  lazy: LazySummary | null;
}

/** `ferry agent`: the destination of `ferry migrate`. Serves one migration at a time. */
export async function runAgent(opts: AgentOptions): Promise<void> {
  await rehearse("restore", false, opts.log); // now, not while a migrating process waits for its restore
  let chain = Promise.resolve();
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const server = await opts.transport.listen(opts.listen, (socket) => {
    const from = socket.remoteAddress; // gone once the socket is
    chain = chain.then(async () => {
      try {
        const r = await agentSession(socket, opts);
        opts.onMigrated?.(r);
      } catch (e) {
        opts.onFailed?.(e as Error);
        opts.log?.(`migration from ${from} failed: ${process.env.FERRY_DEBUG ? (e as Error).stack : (e as Error).message}`);
      }
      if (opts.once) finish();
    });
  }).catch((e: Error) => {
    throw new FerryError("FERRY_LISTEN", `cannot listen on ${opts.listen.host}:${opts.listen.port}: ${e.message}`);
  });
  opts.onReady?.(server.address() as net.AddressInfo);
  const stop = () => finish();
  opts.signal?.addEventListener("abort", stop, { once: true });
  try {
    await finished;
  } finally {
    opts.signal?.removeEventListener("abort", stop);
    server.close();
    await chain;
  }
}

/**
 * One migration: receive the images (into tmpfs) and pre-copied pages (into memory), restore
 * the process when told, install what the rounds sent, and with lazy/hybrid fill the rest from
 * the source's page server. Whatever fails, the source is told (it then keeps its process).
 */
export async function agentSession(socket: net.Socket, opts: Pick<AgentOptions, "keepImages" | "log" | "transport" | "onPhase" | "retryForMs" | "maxRate" | "actionScript">): Promise<AgentSessionResult> {
  const control = new Control(socket);
  const store = new PageStore();
  control.onUnasked = (f) => {
    if (f.cmd !== MCMD.PAGES) return false;
    store.add(f.vaddr, f.nrPages, f.payload);
    return true;
  };
  let dir: string | null = null;
  let receiver: ImageReceiver | null = null;
  let pid = 0;
  let guard: UffdGuard | null = null;
  let early: EarlyChannels | null = null;
  const sourceHost = (socket.remoteAddress ?? "").replace(/^::ffff:/, "");
  let cleanup: Watchdog | null = null;
  let stub: RestoreStub | null = null;
  /** the process may run here from now on: an ERROR (which lets the source resume its copy) is a lie */
  let resumed = false;
  const phase = (p: AgentPhase) => opts.onPhase?.(p, pid);
  try {
    const hello = parseHello((await control.expect(MCMD.HELLO, 10_000)).payload);
    pid = hello.pid;
    if (hello.version !== MIGRATE_VERSION) throw new FerryError("FERRY_VERSION", `the source speaks migration protocol ${hello.version}, this agent ${MIGRATE_VERSION}`);
    if (processExists(hello.pid)) throw new FerryError("FERRY_PID_TAKEN", `PID ${hello.pid} is taken on the destination: it cannot come here with its PID`);
    // the process's first task, cloned now while this agent holds no pages (keeps the PID too)
    stub = spawnRestoreStub(hello.pid);
    // the uffd guard of the lazy restore (pre-copy's too: its pages go in after the resume), started now: it costs milliseconds the downtime need not pay
    if (hello.mode !== "stop-copy") guard = UffdGuard.prepare(hello.pid);
    // the page server's connections too (its TLS handshakes): it listens already, and answers after RESTORE
    if (hello.pageServerPort) early = new EarlyChannels({ host: sourceHost, port: hello.pageServerPort }, hello.pid, opts.transport, opts.maxRate);
    dir = opts.keepImages ? path.join(opts.keepImages, `${hello.pid}-${Date.now()}`) : fs.mkdtempSync(path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), "ferry-agent-"));
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // the images hold the process's memory: removed even if this agent is killed
    if (!opts.keepImages) cleanup = Watchdog.start("ferry-agent-cleanup", 'cat >/dev/null; rm -rf -- "$1"', [dir]);
    const ok: HelloOk = { version: MIGRATE_VERSION, codec: hello.codecs?.includes(CODEC) ? CODEC : null };
    await control.sendJson(MCMD.HELLO_OK, ok);
    phase("receiving");
    receiver = new ImageReceiver(dir);
    let req: RestoreRequest;
    let sp!: Spans;
    try {
      for (;;) {
        const f = await control.next();
        if (receiver.take(f.cmd, f.payload)) continue;
        if (f.cmd === MCMD.RESTORE) {
          sp = new Spans();
          req = parseRestoreRequest(f.payload);
          break;
        }
        if (f.cmd === MCMD.ABORT) throw new FerryError("FERRY_ABORTED", `the source gave up: ${parseMessage(f.payload, "reason")}`);
        throw new FerryError("FERRY_PROTOCOL", `unexpected command ${f.cmd} before RESTORE`);
      }
    } finally {
      receiver.close();
    }
    const precopiedPages = store.size;
    const tRestore = performance.now();
    let restored: Restored;
    let transfer: Promise<LazySummary> | null = null;
    let resumedAtUs: number;
    if (req.pageServerPort || req.keep) {
      // lazy and hybrid fetch from the source's page server what is not here; pre-copy holds
      // every page here: installed after the resume, a page touched first installed at once
      const pageServer = req.pageServerPort ? { host: sourceHost, port: req.pageServerPort } : null;
      if (early && early.endpoint.port !== req.pageServerPort) {
        early.close(); // another page server than HELLO said: not the one to talk to
        early = null;
      }
      const r = await restoreLazyWithServer({
        images: dir, pageServer, retryForMs: opts.retryForMs ?? 10_000, maxRate: opts.maxRate, transport: opts.transport,
        log: (l) => opts.log?.(l), local: req.keep?.length ? store.localPages(req.keep) : undefined, guard: guard ?? undefined, spans: sp,
        early: early ?? undefined, stub: stub ?? undefined, connectDuringRestore: true,
        beforeRestore: () => phase("restore"),
      });
      guard = null; // the daemon's now
      early = null;
      resumed = true;
      resumedAtUs = nowUs();
      restored = r.restored;
      transfer = r.transfer;
    } else {
      phase("restore");
      restored = restore({ images: dir, spans: sp, stub: stub ?? undefined });
      resumed = true;
      resumedAtUs = nowUs();
    }
    try {
      runActionScript(opts.actionScript, "post-restore", restored.pid);
    } catch (e) {
      opts.log?.(`${(e as Error).message} (the process runs here all the same)`); // failing now would let the source run it too
    }
    phase("running");
    if (process.env.FERRY_DEBUG) opts.log?.(`restore ${(performance.now() - tRestore).toFixed(1)} ms (restore() ${restored.durationMs.toFixed(1)} ms)`);
    const reply: RestoredReply = {
      pid: restored.pid, resumedAtUs, restoreMs: restored.durationMs,
      steps: roundSteps(sp.steps), stepsOriginUs: epochUsOf(sp.origin),
    };
    // from here on the connection may fail without changing anything: the process runs here
    await control.sendJson(MCMD.RESTORED, reply).catch(() => {});
    let lazy: LazySummary | null = null;
    if (transfer) {
      phase("lazy");
      lazy = await transfer; // it goes on by its own connections even if this one is lost
    }
    await control.sendJson(MCMD.DONE, lazy).catch(() => {});
    if (lazy?.outcome === "failed") {
      throw new FerryError("FERRY_LAZY_FAILED", `${lazy.error ?? "the lazy transfer failed"}; the source's copy is the one left (frozen there if it could not be told: \`ferry resume ${pid}\`)`);
    }
    if (!transfer && !control.isOpen) {
      opts.log?.(`process ${pid} runs here, but the source went away before it heard so: its frozen copy there is not needed (kill it)`);
    }
    phase("done");
    return { pid: restored.pid, mode: hello.mode, imageBytes: receiver.bytes, precopiedPages, lazy };
  } catch (e) {
    phase("failed");
    guard?.release();
    early?.close();
    if (!resumed) (e as Error).message += "; nothing of it runs here";
    if (!resumed) await control.sendJson(MCMD.ERROR, { message: (e as Error).message }).catch(() => {});
    throw e;
  } finally {
    stub?.discard(); // nothing once a restore took it
    socket.end();
    if (dir && !opts.keepImages) fs.rmSync(dir, { recursive: true, force: true });
    cleanup?.close();
  }
}

function nowUs(): number {
  return realtimeUs();
}
