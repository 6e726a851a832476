import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type net from "node:net";
import { FerryError } from "../errors.js";
import { restore, type Restored } from "../restore/index.js";
import { uffdUnregister } from "../kernel/uffd.js";
import { processExists } from "../kernel/procfs.js";
import { epochUsOf, realtimeUs } from "../kernel/clock.js";
import type { Endpoint } from "../net/endpoint.js";
import type { Transport } from "../net/transport.js";
import { restoreLazyWithServer } from "../lazy/destination.js";
import type { TargetUffd } from "../lazy/attach.js";
import type { LazySummary } from "../lazy/stats.js";
import { Control } from "./control.js";
import { ImageReceiver } from "./imageStream.js";
import { PageStore } from "./pageStore.js";
import { warmImageCodecs } from "../images/store.js";
import { MCMD, MIGRATE_VERSION, MODES, parse, type Hello, type RestoreRequest, type RestoredReply } from "./protocol.js";
import { Spans, roundSteps } from "../spans.js";

export interface AgentOptions {
  listen: Endpoint;
  transport: Transport;
  /** keep each migration's images in DIR/PID-TIME instead of removing them */
  keepImages?: string;
  /** serve one migration, then stop */
  once?: boolean;
  log?: (line: string) => void;
  onReady?: (address: net.AddressInfo) => void;
  onMigrated?: (r: AgentSessionResult) => void;
  onFailed?: (e: Error) => void;
  signal?: AbortSignal;
}

export interface AgentSessionResult {
  pid: number;
  mode: Hello["mode"];
  imageBytes: number;
  precopiedPages: number;
  lazy: LazySummary | null;
}

/** `ferry agent`: the destination of `ferry migrate`. Serves one migration at a time. */
export async function runAgent(opts: AgentOptions): Promise<void> {
  warmImageCodecs(); // now, not while a migrating process waits for its restore
  let chain = Promise.resolve();
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const server = await opts.transport.listen(opts.listen, (socket) => {
    chain = chain.then(async () => {
      try {
        const r = await agentSession(socket, opts);
        opts.onMigrated?.(r);
      } catch (e) {
        opts.onFailed?.(e as Error);
        opts.log?.(`migration from ${socket.remoteAddress} failed: ${process.env.FERRY_DEBUG ? (e as Error).stack : (e as Error).message}`);
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
export async function agentSession(socket: net.Socket, opts: Pick<AgentOptions, "keepImages" | "log" | "transport">): Promise<AgentSessionResult> {
  const control = new Control(socket);
  const store = new PageStore();
  control.onUnasked = (f) => {
    if (f.cmd !== MCMD.PAGES) return false;
    store.add(f.vaddr, f.nrPages, f.payload);
    return true;
  };
  let dir: string | null = null;
  let receiver: ImageReceiver | null = null;
  try {
    const hello = parse<Hello>((await control.expect(MCMD.HELLO, 10_000)).payload);
    if (hello.version !== MIGRATE_VERSION) throw new FerryError("FERRY_VERSION", `the source speaks migration protocol ${hello.version}, this agent ${MIGRATE_VERSION}`);
    if (!MODES.includes(hello.mode)) throw new FerryError("FERRY_USAGE", `unknown mode ${hello.mode}`);
    if (processExists(hello.pid)) throw new FerryError("FERRY_PID_TAKEN", `PID ${hello.pid} is taken on the destination: it cannot come here with its PID`);
    dir = opts.keepImages ? path.join(opts.keepImages, `${hello.pid}-${Date.now()}`) : fs.mkdtempSync(path.join(fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir(), "ferry-agent-"));
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    await control.sendJson(MCMD.HELLO_OK, { version: MIGRATE_VERSION });
    receiver = new ImageReceiver(dir);
    let req: RestoreRequest;
    let sp!: Spans;
    try {
      for (;;) {
        const f = await control.next();
        if (receiver.take(f.cmd, f.payload)) continue;
        if (f.cmd === MCMD.RESTORE) {
          sp = new Spans();
          req = parse<RestoreRequest>(f.payload);
          break;
        }
        if (f.cmd === MCMD.ABORT) throw new FerryError("FERRY_ABORTED", `the source gave up: ${parse<{ reason: string }>(f.payload).reason}`);
        throw new FerryError("FERRY_PROTOCOL", `unexpected command ${f.cmd} before RESTORE`);
      }
    } finally {
      receiver.close();
    }
    const precopiedPages = store.size;
    const tRestore = performance.now();
    let installed = 0;
    const install = (t: TargetUffd) => {
      installed = store.install(t.fd, req.keep ?? []);
    };
    let restored: Restored;
    let transfer: Promise<LazySummary> | null = null;
    let resumedAtUs: number;
    if (req.pageServerPort) {
      const r = await restoreLazyWithServer({
        images: dir, pageServer: { host: socket.remoteAddress!.replace(/^::ffff:/, ""), port: req.pageServerPort }, retryForMs: 10_000, transport: opts.transport,
        log: (l) => opts.log?.(l), local: req.keep?.length ? store.localPages(req.keep) : undefined, spans: sp,
      });
      resumedAtUs = nowUs();
      restored = r.restored;
      transfer = r.transfer;
    } else if (req.keep) {
      // pre-copy: every page is here; the registration ends once they are in
      restored = restore({
        images: dir, spans: sp, lazy: (t) => {
          try {
            sp.time("install pre-copied pages", () => install(t));
            for (const r of t.ranges) uffdUnregister(t.fd, r.start, r.end - r.start);
          } finally {
            fs.closeSync(t.fd);
          }
        },
      });
      resumedAtUs = nowUs();
    } else {
      restored = restore({ images: dir, spans: sp });
      resumedAtUs = nowUs();
    }
    if (process.env.FERRY_DEBUG) opts.log?.(`restore ${(performance.now() - tRestore).toFixed(1)} ms (restore() ${restored.durationMs.toFixed(1)} ms, ${installed} pages installed)`);
    const reply: RestoredReply = {
      pid: restored.pid, resumedAtUs, restoreMs: restored.durationMs, installedPages: installed,
      steps: roundSteps(sp.steps), stepsOriginUs: epochUsOf(sp.origin),
    };
    await control.sendJson(MCMD.RESTORED, reply);
    let lazy: LazySummary | null = null;
    if (transfer) {
      lazy = await transfer;
      if (lazy.outcome === "failed") opts.log?.(`the lazy transfer failed: ${lazy.error}`);
    }
    await control.sendJson(MCMD.DONE, lazy);
    return { pid: restored.pid, mode: hello.mode, imageBytes: receiver.bytes, precopiedPages, lazy };
  } catch (e) {
    await control.sendJson(MCMD.ERROR, { message: (e as Error).message }).catch(() => {});
    throw e;
  } finally {
    socket.end();
    if (dir && !opts.keepImages) fs.rmSync(dir, { recursive: true, force: true });
  }
}

function nowUs(): number {
  return realtimeUs();
}
