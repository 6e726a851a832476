/**
 * Kernel objects behind fds (eventfd, signalfd, timerfd, epoll, memfd): for each, a victim sets the
 * object up, ferry dumps it (which kills it), restores it in the foreground, and the victim checks
 * its objects itself on SIGTERM.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { dumpAndRestore, ferry } from "./harness/ferry.js";
import { cleanupVictim, finishVictim, startVictim, type Victim } from "./harness/victims.js";

/** Dump the victim (ferry kills it), restore it in the foreground, and return its verdict. */
async function dumpRestoreVerdict(v: Victim): Promise<string> {
  const restore = await dumpAndRestore(v.pid, v.exited, path.join(v.dir, "images"));
  const verdict = await finishVictim(v.pid, v.resultFile);
  const run = await restore.done;
  assert.equal(run.code, verdict === "PASS" ? 0 : 1, `restore ended with ${run.code}: ${run.stderr}`);
  return verdict;
}

async function survives(name: string): Promise<void> {
  const v = await startVictim(name);
  try {
    assert.equal(await dumpRestoreVerdict(v), "PASS");
  } finally {
    await cleanupVictim(v);
  }
}

test("eventfd: a counter and an EFD_SEMAPHORE eventfd keep their counts and flags", () => survives("eventfd"));

test("eventfd: 64-bit counts (past 2^32 and 2^53, and full) come back exact, a dup stays one eventfd", () =>
  survives("eventfd_wide"));

test("signalfd: mask and flags are kept, pending signals are read through it", () => survives("signalfd"));

test("timerfd: a periodic timer keeps expiring, a one-hour CLOCK_BOOTTIME timer keeps counting down", () =>
  survives("timerfd"));

test("timerfd: unread expirations, wall-clock and boottime deadlines, and a disarmed interval are kept", () =>
  survives("timerfd_ticks"));

test("epoll: registrations with their events and data come back, epoll_wait reports the same", () => survives("epoll"));

test("epoll: a watch moved to a dup, a fired one-shot, an edge pending, nested and dup'ed epolls", () =>
  survives("epoll_moved"));

test("epoll: a watch whose file has no fd left is refused at dump, and the process is unharmed", async () => {
  const v = await startVictim("epoll_orphan");
  try {
    const dumped = await ferry(["dump", String(v.pid), "-D", path.join(v.dir, "images")]);
    assert.notEqual(dumped.code, 0);
    assert.match(dumped.stderr, /epoll fd \d+ watches a file registered as fd \d+ .* no longer has open/);
    assert.equal(await finishVictim(v.pid, v.resultFile), "PASS");
  } finally {
    await cleanupVictim(v);
  }
});

test("memfd: the fd and its MAP_SHARED mapping stay one object, with content and seals", () => survives("memfd"));

test("memfd: holes, blob-sized content, mode, offsets, a read-only open, seals after a writable mapping", () =>
  survives("memfd_sparse"));

test("a parent and its child share a sealed, mapped memfd and an epoll: both still see one object each", () =>
  survives("fd_objects_tree"));
