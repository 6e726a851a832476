import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { startVictim, finishVictim, cleanupVictim, isVictim } from "./harness/victims.js";
import { descendants } from "../src/lazy/processTree.js";
import { dumpAndRestore, ferry, tempDir, type RunningFerry } from "./harness/ferry.js";

/** The cow_tree victim's private area, written by the parent before it forks. */
const AREA_KB = 32 * 1024;

/** A process and all its descendants. */
function treeOf(pid: number): number[] {
  return [pid, ...descendants(pid)];
}

/** Proportional anonymous memory of each process (kB): a page shared by n processes counts 1/n in each. */
function pssAnonKb(pids: number[]): number[] {
  return pids.map((p) => {
    const m = /^Pss_Anon:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${p}/smaps_rollup`, "utf8"));
    assert.ok(m, `no Pss_Anon in /proc/${p}/smaps_rollup`);
    return Number(m[1]);
  });
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

test("cow_tree: private memory shared since fork is shared again after restore, and every page is right", async (t) => {
  const v = await startVictim("cow_tree");
  const images = tempDir("ferry-cow-");
  let restored: RunningFerry | undefined;
  let tree: number[] = [];
  try {
    tree = treeOf(v.pid);
    assert.equal(tree.length, 5, "parent, three children and a grandchild");
    const before = pssAnonKb(tree);
    // Shared four ways (five for child 1's part): the whole tree holds about one copy of the area.
    assert.ok(sum(before) < 1.5 * AREA_KB, `before the dump the tree holds ${sum(before)} kB of anonymous memory (Pss): the victim does not share its area`);

    restored = await dumpAndRestore(v.pid, v.exited, images);
    assert.deepEqual(treeOf(v.pid), tree, "the same tree, with the same PIDs");
    const after = pssAnonKb(tree);
    // Each process with its own copy would hold five areas (160 MiB); shared, still about one.
    assert.ok(sum(after) < 1.5 * AREA_KB,
      `after restore the tree holds ${sum(after)} kB of anonymous memory (Pss: ${after.join(", ")}), before the dump ${sum(before)} kB: the area is not shared`);

    t.diagnostic(`Pss_Anon of the tree: ${sum(before)} kB before the dump, ${sum(after)} kB after restore (${after.join(" + ")})`);
    assert.equal(await finishVictim(v.pid, v.resultFile), "PASS");
    const end = await restored.done;
    assert.equal(end.code, 0, `the restored victim's exit status, as ferry restore reports it: ${end.stderr}`);
  } finally {
    restored?.child.kill("SIGKILL");
    // the members too, when the parent did not end them (their own parent then is init)
    for (const pid of tree.slice(1)) if (isVictim(pid, v.resultFile)) process.kill(pid, "SIGKILL");
    await cleanupVictim(v);
    fs.rmSync(images, { recursive: true, force: true });
  }
});

test("cow_tree: a dump --leave-running leaves the tree's memory shared, and every page right", async (t) => {
  const v = await startVictim("cow_tree");
  const images = tempDir("ferry-cow-");
  let tree: number[] = [];
  try {
    tree = treeOf(v.pid);
    const before = pssAnonKb(tree);
    const run = await ferry(["dump", String(v.pid), "-D", images, "--leave-running"]);
    assert.equal(run.code, 0, run.stderr);
    const after = pssAnonKb(tree);
    t.diagnostic(`Pss_Anon of the tree: ${sum(before)} kB before the dump, ${sum(after)} kB after it (${after.join(" + ")})`);
    // Read with a pin, the parent's pages would each get a copy of their own: two areas.
    assert.ok(sum(after) < 1.5 * AREA_KB, `after the dump the tree holds ${sum(after)} kB of anonymous memory (Pss: ${after.join(", ")}), before it ${sum(before)} kB: the dump un-shared the area`);
    assert.equal(await finishVictim(v.pid, v.resultFile), "PASS");
  } finally {
    for (const pid of tree.slice(1)) if (isVictim(pid, v.resultFile)) process.kill(pid, "SIGKILL");
    await cleanupVictim(v);
    fs.rmSync(images, { recursive: true, force: true });
  }
});
