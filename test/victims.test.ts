/**
 * Every victim of the zoo passes on its own: started, left alone for 50 ms, stopped with SIGTERM.
 * This proves the victims are right before ferry touches them.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import {
  VICTIM_SPECS,
  buildVictim,
  cleanupVictim,
  finishVictim,
  startVictim,
} from "./harness/victims.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

before(async () => {
  // compile the zoo two at a time (two CPUs here) rather than one per test
  const names = VICTIM_SPECS.map((s) => s.name);
  const workers = [0, 1].map(async () => {
    for (let name = names.shift(); name !== undefined; name = names.shift()) await buildVictim(name);
  });
  await Promise.all(workers);
});

for (const spec of VICTIM_SPECS) {
  test(`victim ${spec.name} passes without a checkpoint: ${spec.checks}`, async () => {
    const v = await startVictim(spec.name);
    try {
      await sleep(50);
      assert.equal(await finishVictim(v.pid, v.resultFile), "PASS");
      assert.deepEqual(await v.exited, { code: 0, signal: null });
    } finally {
      await cleanupVictim(v);
    }
  });
}

test("a victim starts with only fds 0-2 on /dev/null, in its own session", async () => {
  const v = await startVictim("devnull");
  try {
    const fds = fs.readdirSync(`/proc/${v.pid}/fd`).map(Number).sort((a, b) => a - b);
    assert.deepEqual(fds, [0, 1, 2, 10, 11]);
    for (const fd of [0, 1, 2]) assert.equal(fs.readlinkSync(`/proc/${v.pid}/fd/${fd}`), "/dev/null");
    const stat = fs.readFileSync(`/proc/${v.pid}/stat`, "utf8");
    const session = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
    assert.equal(session, v.pid);
    assert.equal(await finishVictim(v.pid, v.resultFile), "PASS");
  } finally {
    await cleanupVictim(v);
  }
});

test("finishVictim says so when a victim died without a verdict", async () => {
  // it watches the PID, not child events: after a restore the victim is not our child
  const v = await startVictim("blocked_read");
  try {
    process.kill(v.pid, "SIGKILL");
    await assert.rejects(finishVictim(v.pid, v.resultFile, 3_000), /gone without writing a verdict/);
  } finally {
    await cleanupVictim(v);
  }
});
