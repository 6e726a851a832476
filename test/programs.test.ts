import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { FERRY_CLI, ferry, startFerry, tempDir, waitPidGone } from "./harness/ferry.js";

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
  const result = path.join(dir, "result");
  const script = path.join(dir, "victim.py");
  fs.writeFileSync(script, `
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
  // The real interpreter, not a wrapper script that would exec it later.
  const python = fs.realpathSync(execFileSync("python3", ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" }).trim());
  const victim = spawn(python, [script, result], { detached: true, stdio: "ignore" });
  const exited = new Promise((r) => victim.on("exit", r));
  while (!fs.existsSync(result + ".ready")) await new Promise((r) => setTimeout(r, 10));
  const pid = victim.pid!;
  const dumped = await ferry(["dump", String(pid), "-D", path.join(dir, "img")]);
  assert.equal(dumped.code, 0, dumped.stderr);
  await exited;
  await waitPidGone(pid);
  const restored = startFerry(["restore", "-D", path.join(dir, "img")], 60_000, true);
  await restored.ready;
  process.kill(pid, "SIGTERM");
  const run = await restored.done;
  assert.equal(run.code, 0, run.stderr);
  assert.match(await waitLine(result), /^PASS \d+$/);
  fs.rmSync(dir, { recursive: true, force: true });
});
