import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { FERRY_CLI, dumpAndRestore, ferry, startFerry, tempDir, waitPidGone } from "./harness/ferry.js";

/** The real interpreter, not a wrapper script (pyenv's shim) that would exec it later. */
function python3(): string {
  return fs.realpathSync(execFileSync("python3", ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" }).trim());
}

/** Wait until `file` exists and holds a full line. */
async function waitLine(file: string, timeoutMs = 15_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (fs.existsSync(file)) {
      const text = fs.readFileSync(file, "utf8");
      if (text.endsWith("\n")) return text.trim();
    }
    if (Date.now() > until) throw new Error(`${file} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * python3 running `source`, which gets RESULT as argv[1] and creates RESULT.ready once set up;
 * resolves then. `kill` ends it (or its restored self, which has its PID) if it still runs.
 */
async function startPython(dir: string, source: string) {
  const script = path.join(dir, "victim.py");
  const result = path.join(dir, "result");
  fs.writeFileSync(script, source);
  const victim = spawn(python3(), [script, result], { detached: true, stdio: "ignore" });
  const exited = new Promise((r) => victim.on("exit", r));
  while (!fs.existsSync(result + ".ready")) await new Promise((r) => setTimeout(r, 10));
  const kill = () => {
    try {
      process.kill(victim.pid!, "SIGKILL");
    } catch { /* gone */ }
  };
  return { pid: victim.pid!, exited, result, kill };
}

test("a bash loop under --shell-job survives dump and restore inside its terminal", async () => {
  const dir = tempDir();
  const result = path.join(dir, "result");
  // The whole story runs in one pseudo-terminal made by script(1): the loop is a job of the
  // shell there, ferry dumps it and restores it into the same session and terminal.
  const drive = path.join(dir, "drive.sh");
  fs.writeFileSync(drive, `
F="${process.execPath} ${FERRY_CLI}"
bash -c 'n=0; trap "echo PASS \\$n \\$(readlink /proc/self/fd/2) > ${result}; exit 0" TERM; while :; do n=$((n+1)); done' &
p=$!
sleep 0.3
$F dump $p -D ${dir}/img --shell-job || { echo dump failed > ${result}; exit 1; }
wait $p 2>/dev/null
$F restore -D ${dir}/img --shell-job -d --pidfile ${dir}/pid || { echo restore failed > ${result}; exit 1; }
sleep 0.3
kill -TERM $(cat ${dir}/pid)
for i in $(seq 100); do [ -s ${result} ] && break; sleep 0.05; done
`);
  const out = execFileSync("script", ["-qfec", `bash ${drive}`, "/dev/null"], { timeout: 30_000, encoding: "utf8" });
  const verdict = await waitLine(result);
  assert.match(verdict, /^PASS \d+ \/dev\/pts\/\d+$/, `${verdict}\n${out}`);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("python3 holding a large dict survives dump and restore", async () => {
  const dir = tempDir();
  const py = await startPython(dir, `
import signal, sys, time
d = {i: str(i) * 3 for i in range(500000)}
stop = False
def on_term(s, f):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
open(sys.argv[1] + ".ready", "w").close()
n = 0
while not stop:
    n += 1
    time.sleep(0.001)
ok = len(d) == 500000 and all(d[i] == str(i) * 3 for i in range(500000))
open(sys.argv[1], "w").write(("PASS %d\\n" % n) if ok else "FAIL: dict changed\\n")
`);
  try {
    const restored = await dumpAndRestore(py.pid, py.exited, path.join(dir, "img"));
    process.kill(py.pid, "SIGTERM");
    const run = await restored.done;
    assert.equal(run.code, 0, run.stderr);
    assert.match(await waitLine(py.result), /^PASS \d+$/);
  } finally {
    py.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** A node HTTP server counting its hits, and a keep-alive client with one connection to it. */
async function nodeHttp(dir: string) {
  const server = path.join(dir, "server.cjs");
  fs.writeFileSync(server, `
const http = require("http");
let hits = 0;
// Idle keep-alive connections live 60 s (Node's default is 5 s: a slow dump and restore on a
// loaded machine would let the server close it, rightly, before the client uses it again).
const server = http.createServer((req, res) => { hits++; res.end("hits " + hits); });
server.keepAliveTimeout = 60000;
server.listen(Number(process.argv[2]), "127.0.0.1", () => {
  require("fs").writeFileSync(process.argv[3], "ready");
});
`);
  const port = 30000 + (process.pid % 20000);
  const ready = path.join(dir, "ready");
  const child = spawn(process.execPath, [server, String(port), ready], { detached: true, stdio: "ignore" });
  const exited = new Promise((r) => child.on("exit", r));
  // keepAliveMsecs: the agent's TCP keepalive probes start after 60 s, not 1 s.
  const agent = new http.Agent({ keepAlive: true, keepAliveMsecs: 60_000, maxSockets: 1 });
  /** A request; `sent` resolves once it is written to the connection. */
  const get = () => {
    let sent!: () => void;
    const written = new Promise<void>((r) => (sent = r));
    const response = new Promise<{ body: string; localPort: number }>((resolve, reject) => {
      http.get({ host: "127.0.0.1", port, agent }, (res) => {
        let body = "";
        const localPort = res.socket.localPort!; // the socket goes back to the agent at the end
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ body, localPort }));
      }).on("error", reject).on("finish", sent);
    });
    return { written, response };
  };
  const stop = () => {
    agent.destroy();
    try {
      process.kill(child.pid!, "SIGKILL");
    } catch { /* gone */ }
  };
  while (!fs.existsSync(ready)) await new Promise((r) => setTimeout(r, 10));
  return { pid: child.pid!, exited, get, stop };
}

test("node serving HTTP keeps its keep-alive connection across dump and restore, with a request sent between them", async () => {
  const dir = tempDir();
  const images = path.join(dir, "img");
  const node = await nodeHttp(dir);
  try {
    const before = [await node.get().response, await node.get().response];
    assert.deepEqual(before.map((r) => r.body), ["hits 1", "hits 2"]);
    const dumped = await ferry(["dump", String(node.pid), "-D", images]);
    assert.equal(dumped.code, 0, dumped.stderr);
    await node.exited;
    await waitPidGone(node.pid);
    // No process has the connection now: the dump's holder keeps it, and takes the request in.
    const during = node.get();
    await during.written;
    const restored = startFerry(["restore", "-D", images], 60_000, true);
    await restored.ready;
    const after = await during.response;
    assert.equal(after.body, "hits 3", "the request sent while the server was dumped was served after the restore");
    assert.equal(after.localPort, before[1].localPort, "the same keep-alive connection served it");
    assert.equal((await node.get().response).body, "hits 4");
    assert.ok(!fs.existsSync(path.join(images, "tcp-holder.sock")), "the holder is gone once the restore took the connection");
    process.kill(node.pid, "SIGTERM");
    const end = await restored.done;
    assert.equal(end.code, 128 + 15, end.stderr);
  } finally {
    node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("node serving HTTP: without the dump's holder (images moved, holder gone) the restore re-creates the connection", async () => {
  const dir = tempDir();
  const images = path.join(dir, "img");
  const node = await nodeHttp(dir);
  try {
    const before = await node.get().response;
    const dumped = await ferry(["dump", String(node.pid), "-D", images]);
    assert.equal(dumped.code, 0, dumped.stderr);
    const holder = Number(fs.readFileSync(path.join(images, "tcp-holder.pid"), "utf8"));
    process.kill(holder, "SIGKILL");
    await node.exited;
    await waitPidGone(node.pid);
    await waitPidGone(holder);
    const restored = startFerry(["restore", "-D", images], 60_000, true);
    await restored.ready;
    const after = await node.get().response;
    assert.equal(after.body, "hits 2", "the server's state carried on");
    assert.equal(after.localPort, before.localPort, "the same keep-alive connection served it");
    process.kill(node.pid, "SIGTERM");
    const end = await restored.done;
    assert.equal(end.code, 128 + 15, end.stderr);
  } finally {
    node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("python3 with several threads and a child process survives dump and restore", async () => {
  const dir = tempDir();
  const py = await startPython(dir, `
import os, signal, sys, threading, time
counts = [0, 0, 0]
stop = threading.Event()
def work(i):
    while not stop.is_set():
        counts[i] += 1
        time.sleep(0.001)
threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
for t in threads: t.start()
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.close(r)
    signal.signal(signal.SIGTERM, lambda s, f: os._exit(0))
    n = 0
    while True:
        n += 1
        os.write(w, b"x")
        time.sleep(0.005)
os.close(w)
got = [0]
def reader():
    while not stop.is_set():
        got[0] += len(os.read(r, 4096))
rt = threading.Thread(target=reader, daemon=True)
rt.start()
term = threading.Event()
signal.signal(signal.SIGTERM, lambda s, f: term.set())
open(sys.argv[1] + ".ready", "w").close()
while not term.is_set():
    time.sleep(0.01)
before = list(counts), got[0]
time.sleep(0.2)
alive = all(c > b for c, b in zip(counts, before[0])) and got[0] > before[1]
stop.set()
for t in threads: t.join()
os.kill(child, signal.SIGTERM)
pid, status = os.waitpid(child, 0)
ok = alive and pid == child and os.WIFEXITED(status)
open(sys.argv[1], "w").write("PASS\\n" if ok else "FAIL: %r %r %r\\n" % (before, counts, status))
`);
  try {
    assert.ok(fs.readdirSync(`/proc/${py.pid}/task`).length >= 4, "python runs its threads");
    const restored = await dumpAndRestore(py.pid, py.exited, path.join(dir, "img"));
    process.kill(py.pid, "SIGTERM");
    const run = await restored.done;
    assert.equal(await waitLine(py.result), "PASS");
    assert.equal(run.code, 0, run.stderr);
  } finally {
    py.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a bash pipeline (yes | grep | wc) under --shell-job survives dump and restore", async () => {
  const dir = tempDir();
  const result = path.join(dir, "count");
  const drive = path.join(dir, "drive.sh");
  // The pipeline is a tree (bash and its three children joined by two pipes full of data), a
  // job of the shell in script(1)'s terminal. After restore, ending `yes` lets the rest finish.
  fs.writeFileSync(drive, `
F="${process.execPath} ${FERRY_CLI}"
bash -c 'yes | grep y | wc -l > ${result}' &
p=$!
sleep 0.3
$F dump $p -D ${dir}/img --shell-job || { echo "dump failed" > ${dir}/error; exit 1; }
wait $p 2>/dev/null
for i in $(seq 200); do pgrep -x yes >/dev/null || pgrep -x wc >/dev/null || break; sleep 0.01; done
$F restore -D ${dir}/img --shell-job -d --pidfile ${dir}/pid || { echo "restore failed" > ${dir}/error; exit 1; }
sleep 0.3
kill -TERM $(pgrep -P $(cat ${dir}/pid) -x yes)
for i in $(seq 200); do [ -s ${result} ] && break; sleep 0.05; done
`);
  const out = execFileSync("script", ["-qfec", `bash ${drive}`, "/dev/null"], { timeout: 60_000, encoding: "utf8" });
  assert.equal(fs.existsSync(path.join(dir, "error")), false, out);
  const count = Number((await waitLine(result)).trim());
  assert.ok(count > 1000, `wc counted ${count} lines: the pipeline did not carry on (${out})`);
  fs.rmSync(dir, { recursive: true, force: true });
});
