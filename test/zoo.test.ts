import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { VICTIMS, startVictim, finishVictim, cleanupVictim } from "./harness/victims.js";
import { dumpAndRestore, ferry, tempDir } from "./harness/ferry.js";

/**
 * The zoo: every victim sets up one piece of state and judges it itself after restore.
 * Each is dumped, restored, dumped again from its restored self, restored again, then asked.
 */
for (const name of VICTIMS) {
  test(`${name}: dump, restore, dump the restored process, restore again`, async () => {
    const v = await startVictim(name);
    const images = tempDir("ferry-zoo-");
    try {
      const restored = await dumpAndRestore(v.pid, v.exited, path.join(images, "1"));
      const again = await dumpAndRestore(v.pid, restored.done, path.join(images, "2"));
      assert.equal(await finishVictim(v.pid, v.resultFile), "PASS");
      const end = await again.done;
      assert.equal(end.code, 0, `the restored victim's exit status, as ferry restore reports it: ${end.stderr}`);
    } finally {
      await cleanupVictim(v);
      fs.rmSync(images, { recursive: true, force: true });
    }
  });

  test(`${name}: keeps running correctly after dump --leave-running`, async () => {
    const v = await startVictim(name);
    const images = tempDir("ferry-zoo-");
    try {
      const run = await ferry(["dump", String(v.pid), "-D", images, "--leave-running"]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(await finishVictim(v.pid, v.resultFile), "PASS");
    } finally {
      await cleanupVictim(v);
      fs.rmSync(images, { recursive: true, force: true });
    }
  });
}
