import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { dumpAndRestore, tempDir } from "./harness/ferry.js";

/** One RESP exchange on a connection that stays open across the dump and the restore. */
function command(sock: net.Socket, ...args: string[]): Promise<string> {
  const wire = `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("");
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis did not answer ${args.join(" ")}`)), 5000);
    sock.once("data", (d) => {
      clearTimeout(timer);
      resolve(d.toString().trim());
    });
    sock.write(wire);
  });
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
}

test("redis-server: keys written before the dump are read after restore, through a connection opened before it", async () => {
  // scripts/install-system-deps.sh redis installs it (CI runs it); a missing server is a failure.
  assert.ok(fs.existsSync("/usr/bin/redis-server"), "redis-server is missing: run `bash scripts/install-system-deps.sh redis`");
  const dir = tempDir("ferry-redis-");
  const port = 20000 + (process.pid % 20000);
  const redis = spawn("/usr/bin/redis-server", [
    "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
    "--protected-mode", "no", "--daemonize", "no", "--dir", dir,
  ], { detached: true, stdio: "ignore" });
  const exited = new Promise((r) => redis.on("exit", r));
  let client: net.Socket | null = null;
  let restoredPid = 0;
  try {
    for (let i = 0; i < 200 && !client; i++) {
      client = await connect(port).catch(() => null);
      if (!client) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(client, "redis did not start listening");
    assert.equal(await command(client, "SET", "alpha", "42"), "+OK");
    assert.equal(await command(client, "RPUSH", "list", "a", "b", "c"), ":3");
    const threads = fs.readdirSync(`/proc/${redis.pid}/task`).length;
    assert.ok(threads > 1, "redis runs several threads");

    const restored = await dumpAndRestore(redis.pid!, exited, path.join(dir, "img"));
    restoredPid = redis.pid!;

    // The same connection, opened before the dump, carries on.
    assert.equal(await command(client, "GET", "alpha"), "$2\r\n42");
    assert.equal(await command(client, "LRANGE", "list", "0", "-1"), "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc");
    assert.equal(await command(client, "SET", "beta", "after"), "+OK");
    // And the listener accepts new clients.
    const other = await connect(port);
    assert.equal(await command(other, "GET", "beta"), "$5\r\nafter");
    assert.equal(fs.readdirSync(`/proc/${restoredPid}/task`).length, threads, "every thread is back");
    other.destroy();
    assert.equal(await command(client, "SHUTDOWN", "NOSAVE").catch(() => "closed"), "closed");
    const end = await restored.done;
    assert.equal(end.code, 0, end.stderr);
    restoredPid = 0;
  } finally {
    client?.destroy();
    try {
      process.kill(restoredPid || redis.pid!, "SIGKILL");
    } catch { /* gone */ }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
