import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { FERRY_CLI, ferry, tempDir, waitPidGone, type FerryRun } from "./harness/ferry.js";
import { ImageDir } from "../src/images/store.js";
import type { Inventory, MmImage, PageMapImage } from "../src/images/types.js";
import { startVictim, cleanupVictim } from "./harness/victims.js";

/** A plain single-threaded program to dump: coreutils sleep, with only /dev/null fds. */
function startSleeper() {
  const child = spawn("sleep", ["1000"], { detached: true, stdio: "ignore" });
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  return { pid: child.pid!, exited, kill: () => child.kill("SIGKILL") };
}

function oneLineError(run: FerryRun, pattern: RegExp): void {
  assert.notEqual(run.code, 0, "ferry must fail");
  const lines = run.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one line expected, got:\n${run.stderr}`);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(lines[0], /internal error|    at /);
}

/** Dump a sleeper into a fresh directory and wait until its PID is free again. */
async function dumpedSleeper(): Promise<{ dir: string; pid: number }> {
  const s = startSleeper();
  const dir = path.join(tempDir(), "img");
  const run = await ferry(["dump", String(s.pid), "-D", dir]);
  assert.equal(run.code, 0, run.stderr);
  await s.exited;
  await waitPidGone(s.pid);
  return { dir, pid: s.pid };
}

test("dump of a PID that does not exist", async () => {
  oneLineError(await ferry(["dump", "4194000", "-D", tempDir()]), /no process with PID 4194000/);
});

test("dump of a kernel thread", async () => {
  oneLineError(await ferry(["dump", "2", "-D", tempDir()]), /PID 2 \(kthreadd\) is a kernel thread/);
});

test("dump of ferry itself", async () => {
  // exec keeps the shell's PID: $$ is ferry's own PID.
  const dir = tempDir();
  const run = await new Promise<FerryRun>((resolve) => {
    const c = spawn("sh", ["-c", `exec "${process.execPath}" "${FERRY_CLI}" dump $$ -D ${dir}`], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    c.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  oneLineError(run, /is ferry itself/);
});

test("restore onto a PID that is taken names the PID and its owner, and changes nothing", async () => {
  const s = startSleeper();
  const dir = path.join(tempDir(), "img");
  const dumped = await ferry(["dump", String(s.pid), "-D", dir, "--leave-running"]);
  assert.equal(dumped.code, 0, dumped.stderr);
  oneLineError(await ferry(["restore", "-D", dir]), new RegExp(`PID ${s.pid} is already taken by another process \\(sleep\\)`));
  assert.equal(fs.readFileSync(`/proc/${s.pid}/comm`, "utf8").trim(), "sleep", "the original keeps running");
  s.kill();
  await s.exited;
});

test("a corrupt page chunk is found before the process runs, and nothing is left behind", async () => {
  const { dir, pid } = await dumpedSleeper();
  const pages = path.join(dir, `pages-${pid}.img`);
  const fd = fs.openSync(pages, "r+");
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, 4096 + 17);
  b[0] ^= 0x40;
  fs.writeSync(fd, b, 0, 1, 4096 + 17);
  fs.closeSync(fd);
  oneLineError(await ferry(["restore", "-D", dir]), new RegExp(`pages-${pid}\\.img: checksum mismatch at offset \\d+`));
  assert.equal(fs.existsSync(`/proc/${pid}`), false, "no half-restored process");
});

test("an image of an unknown format version is refused", async () => {
  const { dir, pid } = await dumpedSleeper();
  const inv = path.join(dir, "inventory.img");
  const buf = fs.readFileSync(inv);
  buf.writeUInt32LE(99, 8);
  fs.writeFileSync(inv, buf);
  oneLineError(await ferry(["restore", "-D", dir]), /inventory\.img: image format version 99, this ferry reads version 1/);
  assert.equal(fs.existsSync(`/proc/${pid}`), false);
});

test("an image made on a kernel with another vDSO is refused", async () => {
  const { dir, pid } = await dumpedSleeper();
  const images = new ImageDir(dir);
  const inv = images.read<Inventory>("inventory.img", "Inventory");
  inv.vdsoSha256 = Buffer.alloc(32, 0xab);
  inv.kernel = "5.10.0-other";
  images.write("inventory.img", "Inventory", inv);
  oneLineError(await ferry(["restore", "-D", dir]), /another vDSO \(5\.10\.0-other/);
  assert.equal(fs.existsSync(`/proc/${pid}`), false);
});

test("a foreign file in place of an image is refused", async () => {
  const { dir, pid } = await dumpedSleeper();
  fs.writeFileSync(path.join(dir, `core-${pid}.img`), "this is not an image at all");
  oneLineError(await ferry(["restore", "-D", dir]), new RegExp(`core-${pid}\\.img: not a ferry image`));
  fs.writeFileSync(path.join(dir, `mm-${pid}.img`), Buffer.alloc(0));
  assert.equal(fs.existsSync(`/proc/${pid}`), false);
});

test("a directory without images is refused", async () => {
  oneLineError(await ferry(["restore", "-D", tempDir()]), /inventory\.img: missing/);
});

test("image files are readable by their owner only", async () => {
  const { dir } = await dumpedSleeper();
  for (const f of fs.readdirSync(dir)) assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  void execFileSync;
});

/**
 * Start a tree victim, dump it (ferry kills it) and wait until all its PIDs are free; `spoil` then
 * damages the images, and the restore must fail with one line, leaving none of the tree behind.
 */
async function spoiledTreeRestore(name: string, spoil: (images: ImageDir, pids: number[], root: number) => RegExp): Promise<void> {
  const v = await startVictim(name);
  const dir = path.join(tempDir(), "img");
  try {
    const run = await ferry(["dump", String(v.pid), "-D", dir]);
    assert.equal(run.code, 0, run.stderr);
    await v.exited;
    const images = new ImageDir(dir);
    const pids = images.read<Inventory>("inventory.img", "Inventory").pids;
    for (const pid of pids) await waitPidGone(pid);
    const error = spoil(images, pids, v.pid);
    oneLineError(await ferry(["restore", "-D", dir]), error);
    for (const pid of pids) assert.equal(fs.existsSync(`/proc/${pid}`), false, `PID ${pid} of the tree is left behind`);
  } finally {
    await cleanupVictim(v);
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  }
}

test("a tree whose restore fails half-way leaves none of its processes behind", () =>
  spoiledTreeRestore("tree", (images, pids) => {
    assert.ok(pids.length >= 4, "parent, two children, a grandchild (and zombies)");
    // Spoil the last live process's pages: the failure comes after its parents were built.
    const last = pids.filter((pid) => fs.existsSync(images.path(`pages-${pid}.img`))).pop()!;
    const fd = fs.openSync(images.path(`pages-${last}.img`), "r+");
    fs.writeSync(fd, Buffer.from([0xff, 0x00, 0xff]), 0, 3, 100);
    fs.closeSync(fd);
    return new RegExp(`pages-${last}\\.img: checksum mismatch`);
  }));

test("pages said to be inherited where no parent's mapping holds them are refused before anything runs", () =>
  spoiledTreeRestore("cow_tree", (images, pids, root) => {
    const children = pids.filter((pid) => pid !== root);
    assert.ok(children.some((pid) => images.read<PageMapImage>(`pagemap-${pid}.img`, "PageMap").inheritedRuns?.length), "the children share pages with their parents");
    // The root has no parent in the tree: nothing it holds can come from one.
    const file = `pagemap-${root}.img`;
    const heap = images.read<MmImage>(`mm-${root}.img`, "Mm").vmas.find((m) => m.kind === "anon" && !m.shared)!;
    images.write(file, "PageMap", { ...images.read<PageMapImage>(file, "PageMap"), inheritedRuns: [{ vaddr: heap.start, nrPages: 1 }] });
    return new RegExp(`${file}: pages at 0x${heap.start.toString(16)} are said to be inherited`);
  }));

/**
 * A python3 running `body` (`ready` names the file to create once set up) that ferry dump must
 * refuse with one line matching `message`; the process runs on after it.
 */
async function refusedDump(body: (ready: string) => string, message: RegExp): Promise<void> {
  const dir = tempDir();
  const child = spawn("python3", ["-c", body(`${dir}/ready`)], { detached: true, stdio: "ignore" });
  try {
    // A ready file, not a scan of /proc/PID/fd: fds python opens while it starts come and go under a scan.
    while (!fs.existsSync(`${dir}/ready`)) await new Promise((r) => setTimeout(r, 10));
    const real = fs.readlinkSync(`/proc/${child.pid}/exe`);
    oneLineError(await ferry(["dump", String(child.pid), "-D", path.join(dir, "img")]), message);
    assert.equal(fs.readlinkSync(`/proc/${child.pid}/exe`), real, "the process runs on after the refused dump");
  } finally {
    child.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test("an fd ferry cannot move is named precisely, and the process keeps running", async () => {
  // python3 holds a packet socket; ferry does not move AF_PACKET sockets.
  await refusedDump((ready) => `import socket, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
open("${ready}", "w").close()
time.sleep(60)`, new RegExp(`pid \\d+ fd \\d+: socket AF_PACKET \\(socket:\\[\\d+\\]\\) is not supported`));
});

/** A python3 that passes `fdExpr` over a socketpair (SCM_RIGHTS) and keeps it queued; ferry dump must refuse it. */
function refusedInFlight(setup: string, fdExpr: string, message: RegExp): Promise<void> {
  return refusedDump((ready) => `import array, select, socket, time
a, b = socket.socketpair()
${setup}
a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [${fdExpr}]))])
open("${ready}", "w").close()
time.sleep(60)`, message);
}

test("a unix socket in flight inside its own queue is refused by name, never dropped", async () => {
  await refusedInFlight("", "b.fileno()", /pid \d+ fd \d+ \(unix socket \(unnamed\)\), message 1 of its queue, fd 1 of 1 in flight: a unix socket in flight inside its own queue .*is not supported/);
});

test("an epoll fd in flight is refused by name, never dropped", async () => {
  await refusedInFlight("ep = select.epoll()", "ep.fileno()", /pid \d+ fd \d+ \(unix socket \(unnamed\)\), message 1 of its queue, fd 1 of 1 in flight: anon_inode:\[eventpoll\] in flight is not supported/);
});
