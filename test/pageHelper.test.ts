/**
 * The page helper thread (second CPU): on dump it writes the page file, on restore it verifies the
 * checksums while ferry copies. The guarantees must be the same as without it: the same file, and
 * a corrupt chunk refused, by file and offset, with no process left running.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ferry, tempDir, waitPidGone } from "./harness/ferry.js";
import { PagesReader, PagesWriter, type MappedRun } from "../src/images/pages.js";
import { PageHelper } from "../src/images/pageHelper.js";
import { crc32At } from "../src/images/store.js";

const oneCpu = os.availableParallelism() < 2;

/** A helper thread that is up (the engine does the work itself until then). */
async function startedHelper(): Promise<PageHelper> {
  const helper = PageHelper.start()!;
  while (!helper.ready) await new Promise((r) => setTimeout(r, 5));
  return helper;
}
const MiB = 1 << 20;

/** 24 MiB of pages, each its own content, in three ranges. */
function pagesData(): { data: Buffer; ranges: { addr: number; len: number }[] } {
  const data = Buffer.from(new SharedArrayBuffer(24 * MiB));
  for (let off = 0; off < data.length; off += 4096) data.fill((off / 4096) % 251 + 1, off, off + 4096);
  return { data, ranges: [{ addr: 0x10000000, len: 8 * MiB }, { addr: 0x20000000, len: 12 * MiB }, { addr: 0x30000000, len: 4 * MiB }] };
}

test("the helper writes the same page file and index as a write in ferry's own thread", { skip: oneCpu }, async () => {
  const dir = tempDir();
  const { data, ranges } = pagesData();
  const plain = new PagesWriter(path.join(dir, "plain.img"));
  plain.addBatch(Buffer.from(data), ranges);
  plain.close();
  const helper = await startedHelper();
  const helped = new PagesWriter(path.join(dir, "helped.img"));
  try {
    helper.waitFor(helped.addBatch(data, ranges, helper));
  } finally {
    helped.close();
    helper.close();
  }
  assert.deepEqual(helped.runs, plain.runs);
  assert.ok(fs.readFileSync(path.join(dir, "helped.img")).equals(fs.readFileSync(path.join(dir, "plain.img"))));
});

test("with the helper verifying, every run arrives whole, and a flipped byte is refused by file and offset", { skip: oneCpu }, async () => {
  const dir = tempDir();
  const file = path.join(dir, "pages.img");
  const { data, ranges } = pagesData();
  const w = new PagesWriter(file);
  w.addBatch(data, ranges);
  w.close();
  const helper = await startedHelper();
  try {
    const seen: MappedRun[] = [];
    const r = new PagesReader(file);
    r.forEach(w.runs, (runs) => {
      for (const run of runs) assert.equal(crc32At(run.at, run.len), w.runs.find((x) => x.vaddr === run.vaddr)!.crc32);
      seen.push(...runs);
    }, helper);
    r.close();
    assert.equal(seen.length, w.runs.length);

    const at = 13 * MiB + 5;
    const bad = path.join(dir, "bad.img");
    const copy = fs.readFileSync(file);
    copy[at] ^= 0x40;
    fs.writeFileSync(bad, copy);
    const rb = new PagesReader(bad);
    try {
      assert.throws(() => rb.forEach(w.runs, () => {}, helper), new RegExp(`${bad}: checksum mismatch at offset ${13 * MiB} `));
    } finally {
      rb.close();
    }
  } finally {
    helper.close();
  }
});

test("a corrupt chunk in a large image (checked by the helper) fails the restore, and nothing runs", { skip: oneCpu, timeout: 60_000 }, async () => {
  // 96 MiB of pages: above the size where restore verifies on the helper thread
  const ready = path.join(tempDir(), "ready");
  const out = fs.openSync(ready, "w");
  const child = spawn("python3", ["-c", "import sys,time\nb=bytearray(96<<20)\nfor i in range(0,len(b),4096): b[i]=(i>>12)%255+1\nprint('ok',flush=True)\ntime.sleep(1000)"], { detached: true, stdio: ["ignore", out, "ignore"] });
  fs.closeSync(out);
  while (!fs.readFileSync(ready, "utf8").includes("ok")) await new Promise((r) => setTimeout(r, 50));
  const pid = child.pid!;
  const dir = path.join(tempDir(), "img");
  const dumped = await ferry(["dump", String(pid), "-D", dir]);
  assert.equal(dumped.code, 0, dumped.stderr);
  await waitPidGone(pid);
  const pages = path.join(dir, `pages-${pid}.img`);
  assert.ok(fs.statSync(pages).size > 90 * MiB);
  const fd = fs.openSync(pages, "r+");
  const at = 80 * MiB + 123;
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, at);
  b[0] ^= 0x01;
  fs.writeSync(fd, b, 0, 1, at);
  fs.closeSync(fd);
  const run = await ferry(["restore", "-D", dir]);
  assert.notEqual(run.code, 0);
  const lines = run.stderr.trim().split("\n");
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0], new RegExp(`pages-${pid}\\.img: checksum mismatch at offset \\d+ `));
  assert.equal(fs.existsSync(`/proc/${pid}`), false, "no half-restored process");
});
