/**
 * Secure by default: every ferry connection is TLS 1.3 authenticated by a pre-shared key made
 * by `ferry keygen`; a peer without the key is refused before a single page is sent, plain TCP
 * must be asked for and stays on loopback addresses unless forced, and a peer that stalls its
 * handshake is dropped without hurting the connections that work.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Host } from "../src/hosts/hosts.js";
import { generateKeyFile, loadKeyFile } from "../src/net/keys.js";
import { openTransport, type Transport } from "../src/net/transport.js";
import { pskTransport } from "../src/net/tlsPsk.js";
import type { LazySummary } from "../src/lazy/stats.js";
import { finishVictim } from "./harness/victims.js";
import { lastJson, startFerryIn, startLazyRestore, startLazySource, startVictimIn, stateOf, withHosts } from "./harness/hosts.js";
import { ferry, tempDir } from "./harness/ferry.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const dir = tempDir("ferry-security-");
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const keyA = generateKeyFile(path.join(dir, "keys", "a")).file, keyB = generateKeyFile(path.join(dir, "keys", "b")).file;
let port = 7700 + (process.pid % 200);
const nextPort = () => port++;
const mode = (f: string) => fs.statSync(f).mode & 0o777;

/** An echo-less server: records what its authenticated peers send; logs refusals. */
async function serve(t: Transport) {
  const got: Buffer[] = [];
  const accepted: net.Socket[] = [];
  const server = await t.listen({ host: "127.0.0.1", port: 0 }, (s) => {
    accepted.push(s);
    s.on("data", (d: Buffer) => got.push(d));
    s.on("error", () => {});
  });
  return { server, got, accepted, port: (server.address() as net.AddressInfo).port };
}

test("ferry keygen: a 256-bit key, mode 0600 in a 0700 directory; never overwrites; a key others can read is refused", async () => {
  const made = path.join(dir, "cli", "key");
  const r = await ferry(["keygen", "--out", made]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(mode(made), 0o600);
  assert.equal(mode(path.dirname(made)), 0o700);
  assert.equal(loadKeyFile(made).key.length, 32);
  const again = await ferry(["keygen", "--out", made]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already exists/);
  assert.notDeepEqual(loadKeyFile(keyA).key, loadKeyFile(made).key);

  const loose = path.join(dir, "loose");
  fs.copyFileSync(made, loose);
  fs.chmodSync(loose, 0o644);
  assert.throws(() => loadKeyFile(loose), { code: "FERRY_KEY_MODE" });
  fs.writeFileSync(path.join(dir, "junk"), "not a key\n", { mode: 0o600 });
  assert.throws(() => loadKeyFile(path.join(dir, "junk")), { code: "FERRY_BAD_KEY" });
  assert.throws(() => openTransport({ keyFile: path.join(dir, "none") }), /no key at .*ferry keygen/);
});

test("same key: TLS 1.3 with AES-128-GCM; another key: refused on both sides before any byte of data", async () => {
  const refusals: string[] = [];
  const a = openTransport({ keyFile: keyA, log: (l) => refusals.push(l) });
  const srv = await serve(a);
  try {
    const ok = (await a.connect({ host: "127.0.0.1", port: srv.port })) as import("node:tls").TLSSocket;
    assert.equal(ok.getProtocol(), "TLSv1.3");
    assert.equal(ok.getCipher().name, "TLS_AES_128_GCM_SHA256");
    ok.write("memory");
    await sleep(50);
    assert.equal(Buffer.concat(srv.got).toString(), "memory");
    ok.destroy();

    const b = openTransport({ keyFile: keyB });
    await assert.rejects(b.connect({ host: "127.0.0.1", port: srv.port }), (e: Error & { code?: string }) => {
      assert.equal(e.code, "FERRY_AUTH");
      assert.match(e.message, /does not hold our key .*copy the same key file to both hosts/);
      return true;
    });
    await sleep(50);
    assert.equal(srv.accepted.length, 1, "the peer with another key never reached the protocol");
    assert.match(refusals.join("\n"), /before anything was sent: it holds another key/);
  } finally {
    srv.server.close();
  }
});

test("--insecure is refused on non-loopback addresses unless forced; a TLS client and a plain server do not mix", async () => {
  const loopback = openTransport({ insecure: true });
  await assert.rejects(loopback.connect({ host: "10.1.2.3", port: 1 }), { code: "FERRY_INSECURE_REFUSED" });
  await assert.rejects(loopback.listen({ host: "0.0.0.0", port: 0 }, () => {}), { code: "FERRY_INSECURE_REFUSED" });
  assert.throws(() => openTransport({ insecure: true, endpoints: [{ host: "192.168.1.1", port: 7 }] }), /not a loopback address .*--insecure=force/);
  assert.equal(openTransport({ insecure: "force", endpoints: [{ host: "192.168.1.1", port: 7 }] }).name, "tcp");

  const plain = await serve(loopback);
  try {
    await assert.rejects(openTransport({ keyFile: keyA }).connect({ host: "127.0.0.1", port: plain.port }), { code: "FERRY_AUTH" });
  } finally {
    plain.server.close();
  }
  const r = await ferry(["dump", "1", "-D", path.join(dir, "img"), "--lazy", "--listen", "0.0.0.0:7070", "--insecure"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^ferry: --insecure sends memory in clear: refused on 0\.0\.0\.0:7070/);
  const bad = await ferry(["dump", "1", "-D", path.join(dir, "img"), "--lazy", "--listen", "127.0.0.1:7070", "--insecure=maybe"]);
  assert.match(bad.stderr, /--insecure takes no value or "force"/);
});

test("a peer that connects and stalls, or sends junk, is dropped after the handshake timeout while an authenticated stream goes on", async () => {
  const logs: string[] = [];
  const t = pskTransport(loadKeyFile(keyA), { handshakeTimeoutMs: 300, log: (l) => logs.push(l) });
  const srv = await serve(t);
  try {
    const good = await t.connect({ host: "127.0.0.1", port: srv.port });
    const stall = net.connect(srv.port, "127.0.0.1");
    const junk = net.connect(srv.port, "127.0.0.1", () => junk.write(Buffer.alloc(1 << 16, 0xff)));
    for (const s of [stall, junk]) s.on("error", () => {});
    const t0 = Date.now();
    const stalledClosed = new Promise<number>((r) => stall.on("close", () => r(Date.now() - t0)));
    const junkClosed = new Promise<void>((r) => junk.on("close", () => r()));
    const chunk = Buffer.alloc(64 << 10, 1);
    const writer = setInterval(() => good.write(chunk), 5);
    const ms = await stalledClosed;
    await junkClosed;
    clearInterval(writer);
    await sleep(50);
    assert.ok(ms >= 250 && ms < 2000, `stalled peer dropped after ${ms} ms`);
    assert.ok(!good.destroyed, "the authenticated connection is untouched");
    const bytes = srv.got.reduce((n, b) => n + b.length, 0);
    assert.ok(bytes >= 20 * chunk.length, `the authenticated stream went on (${bytes} bytes)`);
    assert.match(logs.join("\n"), /no TLS handshake within 0\.3 s/);
    assert.match(logs.join("\n"), /wrong version number|packet length|record/);
    good.destroy();
  } finally {
    srv.server.close();
  }
});

test("lazy migration between two hosts: a destination with another key is refused with one clear line and gets no page; the source keeps its process, and the right key then moves it", async () => {
  await withHosts(async (hosts, images) => {
    const v = await startVictimIn(hosts.a, "lazy_sweep", ["16"]);
    const listen = `127.100.0.1:${nextPort()}`;
    const src = await startLazySource(hosts, v.pid, images, listen, ["--key", keyA]);
    const wrong = startFerryIn(hosts.b, ["restore", "-D", images, "--lazy", "--page-server", listen, "--json", "--key", keyB]);
    const w = await wrong.done;
    assert.equal(w.code, 1);
    const lines = w.stderr.trim().split("\n");
    assert.equal(lines.length, 1, w.stderr);
    assert.match(lines[0], /^ferry: the peer at 127\.100\.0\.1:\d+ does not hold our key/);
    assert.match(stateOf(v.rootPid) ?? "gone", /^[tT]$/, "the source keeps its frozen process");

    const { run: right, pid } = await startLazyRestore(hosts, images, ["--page-server", listen, "--json", "--key", keyA]);
    assert.equal(await finishVictim(pid, v.resultFile), "PASS");
    const r = await right.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(lastJson<{ lazy: LazySummary }>(r).lazy.outcome, "complete");
    const s = await src.done;
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stderr, /refused a connection from 127\.100\.0\.2 before anything was sent: it holds another key/);
    const stats = lastJson<{ connections: number; delivered: boolean }>(s);
    assert.equal(stats.connections, 2, "only the two channels of the right destination reached the page server");
  });
});

test("an --insecure destination against a secure source fails at once with one clear line; the source refuses it and keeps its process", async () => {
  await withHosts(async (hosts, images) => {
    const v = await startVictimIn(hosts.a, "lazy_sweep", ["1"]);
    const listen = `127.100.0.1:${nextPort()}`;
    const src = await startLazySource(hosts, v.pid, images, listen, ["--key", keyA]);
    const t0 = Date.now();
    const plain = await startFerryIn(hosts.b, ["restore", "-D", images, "--lazy", "--page-server", listen, "--insecure"]).done;
    assert.equal(plain.code, 1);
    assert.ok(Date.now() - t0 < 5000, "no waiting out --retry-for");
    assert.match(plain.stderr.trim(), /^ferry: the page server at 127\.100\.0\.1:\d+ hung up without answering \(does it expect a key/);
    process.kill(src.ferryPid()!, "SIGTERM");
    const s = await src.done;
    assert.equal(s.code, 1);
    assert.match(s.stderr, /refused a connection from 127\.100\.0\.2 before anything was sent: .*wrong version number/);
    assert.equal(stateOf(v.rootPid), "T", "the source keeps its process, stopped");
  });
});

test("ferry migrate to an agent, TLS by default: another key is refused before anything is sent and the process runs on at the source; the right key moves it (hybrid)", async () => {
  await withHosts(async (hosts) => {
    const v = await startVictimIn(hosts.a, "migrate_hot", ["32", "4"]);
    const addr = `127.100.0.2:${nextPort()}`;
    const agent = startFerryIn(hosts.b, ["agent", "--listen", addr, "--once", "--key", keyA], { statusFd: true });
    await agent.ready;
    const wrong = await startFerryIn(hosts.a, ["migrate", String(v.pid), "--to", addr, "--json", "--key", keyB]).done;
    assert.equal(wrong.code, 1);
    assert.equal(wrong.stderr.trim().split("\n").filter((l) => l.startsWith("ferry:")).length, 1, wrong.stderr);
    assert.match(wrong.stderr, /does not hold our key/);
    assert.match(stateOf(v.rootPid) ?? "gone", /^[RS]$/, "the process runs on at the source");

    const run = await startFerryIn(hosts.a, ["migrate", String(v.pid), "--to", addr, "--json", "--key", keyA]).done;
    assert.equal(run.code, 0, run.stderr);
    const pid = hosts.b.rootPid(lastJson<{ restoredPid: number }>(run).restoredPid)!;
    assert.equal(await finishVictim(pid, v.resultFile, 20_000), "PASS");
    const a = await agent.done;
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stderr, /refused a connection from 127\.100\.0\.1 before anything was sent: it holds another key/);
  });
});

const BAD_PEER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "harness/badPeer.js");

function badPeer(host: Host, mode: string, target: string): Promise<string> {
  const [h, p] = target.split(":");
  const child = host.spawn([process.execPath, BAD_PEER, mode, h, p, keyA], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  return new Promise((r) => child.on("close", () => r(`${mode}: ${out.trim()}`)));
}

test("during a lazy migration, peers that stall, send junk or claim a 4 GiB frame are dropped (the stalled one after 5 s) and the migration completes", async () => {
  await withHosts(async (hosts, images) => {
    const v = await startVictimIn(hosts.a, "lazy_sweep", ["64"]);
    const listen = `127.100.0.1:${nextPort()}`;
    const src = await startLazySource(hosts, v.pid, images, listen, ["--key", keyA]);
    const { run: dst, pid } = await startLazyRestore(hosts, images, ["--page-server", listen, "--max-rate", "4", "--json", "--key", keyA]);
    const peers = await Promise.all(["stall", "junk", "oversized"].map((m) => badPeer(hosts.b, m, listen)));
    const ms = (m: string) => Number(/closed after (\d+) ms/.exec(peers.find((p) => p.startsWith(m))!)?.[1] ?? NaN);
    assert.ok(ms("stall") >= 4500 && ms("stall") < 8000, peers.join("; "));
    assert.ok(ms("junk") < 2000, peers.join("; "));
    assert.ok(ms("oversized") < 2000, peers.join("; "));
    assert.equal(await finishVictim(pid, v.resultFile, 30_000), "PASS");
    const r = await dst.done;
    assert.equal(r.code, 0, r.stderr);
    const lazy = lastJson<{ lazy: LazySummary }>(r).lazy;
    assert.equal(lazy.outcome, "complete");
    assert.equal(lazy.reconnects ?? 0, 0, "the real link was never disturbed");
    const s = await src.done;
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stderr, /no TLS handshake within 5 s/);
    process.stderr.write(`# bad peers: ${peers.join("; ")}; migration ${lazy.allPagesMs} ms\n`);
  });
});

test("several lazy migrations at once to one destination host: each its own daemon, all complete, every victim passes", async () => {
  await withHosts(async (hosts, images) => {
    const n = 8;
    const runs = await Promise.all(Array.from({ length: n }, async (_, i) => {
      const v = await startVictimIn(hosts.a, "lazy_sweep", ["16"], 1000 + i * 100);
      const dirI = `${images}-${i}`;
      const listen = `127.100.0.1:${nextPort()}`;
      const src = await startLazySource(hosts, v.pid, dirI, listen, ["--key", keyA]);
      return { v, dirI, listen, src };
    }));
    const t0 = Date.now();
    await Promise.all(runs.map(async ({ v, dirI, listen, src }) => {
      const { run: dst, pid } = await startLazyRestore(hosts, dirI, ["--page-server", listen, "--json", "--key", keyA]);
      assert.equal(await finishVictim(pid, v.resultFile, 30_000), "PASS");
      const r = await dst.done;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(lastJson<{ lazy: LazySummary }>(r).lazy.outcome, "complete");
      assert.equal((await src.done).code, 0);
    }));
    process.stderr.write(`# ${n} concurrent lazy migrations of 16 MiB: all done in ${Date.now() - t0} ms\n`);
  });
});
