/**
 * `ferry check` and the kernel layer under it: the CLI reports every feature ferry needs as
 * present on this machine, and the userfaultfd and PAGEMAP_SCAN helpers do what the kernel says.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { PAGE_SIZE } from "../src/kernel/sys.js";
import { PM, readPagemap } from "../src/kernel/mem.js";
import { native } from "../src/kernel/native.js";
import { SelfMapping } from "../src/kernel/selfMapping.js";
import { probeFeatures, type Feature } from "../src/kernel/features.js";
import { PAGE_IS, PAGEMAP_SCAN, PM_SCAN, pagemapScan, pagemapScanAll } from "../src/kernel/pagemapScan.js";
import {
  UFFD_FEATURE, UFFDIO_IOCTL, UFFDIO_REGISTER_MODE, USERFAULTFD_IOC_NEW, _UFFDIO, createUffd, featureNames,
  hasIoctl, parseUffdMsg, readUffdMsgs, uffdApi, uffdCopy, uffdMove, uffdRegister, uffdUnregister, uffdWake,
  uffdWriteProtect, uffdZeropage,
} from "../src/kernel/uffd.js";
import { formatTable } from "../src/cli/check.js";

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const execFileP = promisify(execFile);

/** Run the compiled CLI; a non-zero exit is returned, not thrown, so tests can say what failed. */
async function ferry(...args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await execFileP(process.execPath, [CLI, ...args]);
    return { code: 0, stdout };
  } catch (e) {
    const err = e as { code?: unknown; stdout?: string };
    if (typeof err.code !== "number") throw e;
    return { code: err.code, stdout: err.stdout ?? "" };
  }
}

/** Everything ferry needs, by the names `ferry check` gives them. */
const REQUIRED = [
  "ptrace", "clone3 set_tid", "syscall injection", "process_vm_readv", "pidfd_getfd", "PR_SET_MM_MAP",
  "userfaultfd", "uffd EVENT_FORK", "uffd EVENT_REMAP", "uffd EVENT_REMOVE", "uffd EVENT_UNMAP",
  "uffd MISSING_SHMEM", "uffd WP_ASYNC", "uffd WP_UNPOPULATED", "PAGEMAP_SCAN", "TCP_REPAIR",
];
/** Lines that inform and never fail the check. */
const INFORMATIONAL = ["uffd THREAD_ID", "uffd EXACT_ADDRESS", "uffd MOVE", "soft-dirty", "CAP_SYS_RESOURCE", "kernel", "vDSO"];

function withPagemap<T>(fn: (fd: number) => T): T {
  const fd = fs.openSync("/proc/self/pagemap", "r");
  try {
    return fn(fd);
  } finally {
    fs.closeSync(fd);
  }
}
function withUffd<T>(features: number, fn: (fd: number) => T): T {
  const { fd } = createUffd();
  try {
    uffdApi(fd, features);
    return fn(fd);
  } finally {
    fs.closeSync(fd);
  }
}
function withPages<T>(n: number, fn: (m: SelfMapping) => T): T {
  const m = SelfMapping.pages(n);
  try {
    return fn(m);
  } finally {
    m.unmap();
  }
}
/** Regions as page indexes of m: [[0,2],[5,6]]. */
function pageSpans(m: SelfMapping, regions: { start: number; end: number }[]): number[][] {
  return regions.map((r) => [(r.start - m.addr) / PAGE_SIZE, (r.end - m.addr) / PAGE_SIZE]);
}
/** Children of this process, from /proc (not wait4: that would steal child_process's statuses). */
function ourChildren(): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      if (Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]) === process.pid) out.push(Number(d));
    } catch { /* gone meanwhile */ }
  }
  return out;
}

test("ferry check --json lists every feature ferry needs, all present on this machine", async () => {
  const { code, stdout } = await ferry("check", "--json");
  const report = JSON.parse(stdout) as { ok: boolean; features: Feature[] };
  const byName = new Map(report.features.map((f) => [f.name, f]));
  for (const name of REQUIRED) {
    const f = byName.get(name);
    assert.ok(f, `ferry check has no line for ${name}`);
    assert.equal(f.required, true, `${name} should count as required`);
    assert.equal(f.ok, true, `${name}: ${f.detail}`);
    assert.ok(f.detail && f.impact, `${name} says what it did and what it means`);
  }
  for (const name of INFORMATIONAL) assert.equal(byName.get(name)?.required, false, `${name} is informational`);
  assert.deepEqual([...byName.keys()].sort(), [...REQUIRED, ...INFORMATIONAL].sort());
  assert.equal(report.ok, true);
  assert.equal(code, 0);
  // identity lines carry machine-readable values
  assert.equal(byName.get("kernel")!.value, os.release());
  assert.match(byName.get("vDSO")!.value ?? "", /^[0-9a-f]{64}$/);
  // this machine has no CAP_SYS_RESOURCE: it is reported, and does not fail the check
  assert.equal(byName.get("CAP_SYS_RESOURCE")!.ok, false);
});

test("ferry check prints one aligned line per feature when its output is not a terminal", async () => {
  const { code, stdout } = await ferry("check");
  assert.equal(code, 0, stdout);
  const lines = stdout.trimEnd().split("\n");
  const table = lines.slice(0, lines.indexOf(""));
  assert.equal(table.length, 1 + REQUIRED.length + INFORMATIONAL.length);
  assert.match(table[0], /^FEATURE\s+STATUS\s+DETAIL\s+IMPACT$/);
  const statusAt = table[0].indexOf("STATUS");
  for (const line of table.slice(1)) assert.match(line.slice(statusAt), /^(ok|MISSING|absent) /);
  assert.match(table.find((l) => l.startsWith("CAP_SYS_RESOURCE"))!, /absent/);
  assert.match(lines[lines.length - 1], /everything it needs/);
});

test("a table for a narrow terminal wraps detail and impact inside their columns", () => {
  const f: Feature = { name: "x", ok: false, required: true, detail: "a b c d e f g h i j k l m n o p q r s t u v w x y z ".repeat(3).trim(), impact: "one two three four five six seven eight nine ten ".repeat(4).trim() };
  const lines = formatTable([f], 60).trimEnd().split("\n");
  assert.ok(lines.length > 2);
  for (const l of lines) assert.ok(l.length <= 60, `too wide: ${l}`);
  assert.match(lines[1], /^x\s+MISSING\s+a b c/);
});

test("probing leaves no child process and no open fd behind", async () => {
  const fdsBefore = fs.readdirSync("/proc/self/fd").sort();
  const childrenBefore = ourChildren();
  const features = await probeFeatures();
  assert.ok(features.every((f) => f.ok || !f.required), JSON.stringify(features.filter((f) => !f.ok)));
  assert.deepEqual(fs.readdirSync("/proc/self/fd").sort(), fdsBefore);
  assert.deepEqual(ourChildren(), childrenBefore);
});

test("ioctl numbers are the kernel's", () => {
  assert.equal(UFFDIO_IOCTL.API, 0xc018aa3f);
  assert.equal(UFFDIO_IOCTL.REGISTER, 0xc020aa00);
  assert.equal(UFFDIO_IOCTL.UNREGISTER, 0x8010aa01);
  assert.equal(UFFDIO_IOCTL.WAKE, 0x8010aa02);
  assert.equal(UFFDIO_IOCTL.COPY, 0xc028aa03);
  assert.equal(UFFDIO_IOCTL.ZEROPAGE, 0xc020aa04);
  assert.equal(UFFDIO_IOCTL.MOVE, 0xc028aa05);
  assert.equal(UFFDIO_IOCTL.WRITEPROTECT, 0xc018aa06);
  assert.equal(USERFAULTFD_IOC_NEW, 0xaa00);
  assert.equal(PAGEMAP_SCAN, 0xc0606610);
  assert.equal(UFFD_FEATURE.WP_ASYNC, 0x8000);
  assert.equal(UFFD_FEATURE.MOVE, 0x10000);
});

test("PAGEMAP_SCAN agrees with /proc/self/pagemap on a Buffer we touched", () => {
  const buf = Buffer.alloc(64 * PAGE_SIZE);
  const addr = Number(native.addressOf(buf));
  for (let i = 0; i < 64; i += 3) buf[i * PAGE_SIZE] = 1; // touch every third page
  const start = addr - (addr % PAGE_SIZE) + PAGE_SIZE; // whole pages inside the buffer
  const end = start + 60 * PAGE_SIZE;
  withPagemap((pm) => {
    const { regions, walkEnd } = pagemapScan(pm, start, end, { categoryMask: PAGE_IS.PRESENT });
    assert.equal(walkEnd, end);
    assert.ok(regions.length > 0);
    const entries = readPagemap(pm, start, end);
    entries.forEach((e, i) => {
      const page = start + i * PAGE_SIZE;
      const inRegion = regions.some((r) => r.start <= page && page < r.end);
      assert.equal(inRegion, (e & PM.PRESENT) !== 0n, `page ${i}: pagemap says ${(e & PM.PRESENT) ? "present" : "absent"}`);
    });
  });
});

test("PAGEMAP_SCAN finds touched pages of fresh memory, and resumes from walkEnd", () => {
  withPages(8, (m) =>
    withPagemap((pm) => {
      m.write(0, Buffer.alloc(2 * PAGE_SIZE, 1));
      m.write(5 * PAGE_SIZE, Buffer.from("x"));
      m.write(7 * PAGE_SIZE, Buffer.from("y"));
      const all = pagemapScan(pm, m.addr, m.addr + m.len, { categoryMask: PAGE_IS.PRESENT });
      assert.deepEqual(pageSpans(m, all.regions), [[0, 2], [5, 6], [7, 8]]);
      assert.ok(all.regions.every((r) => r.categories === PAGE_IS.PRESENT));
      // room for one region: the walk stops after it and says where
      const first = pagemapScan(pm, m.addr, m.addr + m.len, { categoryMask: PAGE_IS.PRESENT, maxRegions: 1 });
      assert.deepEqual(pageSpans(m, first.regions), [[0, 2]]);
      assert.ok(first.walkEnd > m.addr && first.walkEnd < m.addr + m.len);
      assert.deepEqual(pageSpans(m, pagemapScanAll(pm, m.addr, m.addr + m.len, { categoryMask: PAGE_IS.PRESENT, maxRegions: 1 })), [[0, 2], [5, 6], [7, 8]]);
      // maxPages counts matching pages
      assert.deepEqual(pageSpans(m, pagemapScan(pm, m.addr, m.addr + m.len, { categoryMask: PAGE_IS.PRESENT, maxPages: 3 }).regions), [[0, 2], [5, 6]]);
      // inverted: the pages not present
      const holes = pagemapScan(pm, m.addr, m.addr + m.len, { categoryMask: PAGE_IS.PRESENT, categoryInvertedMask: PAGE_IS.PRESENT, returnMask: PAGE_IS.PRESENT });
      assert.deepEqual(pageSpans(m, holes.regions), [[2, 5], [6, 7]]);
      assert.ok(holes.regions.every((r) => r.categories === 0));
    }),
  );
});

test("UFFDIO_API reports WP_ASYNC and the other features ferry uses, through the syscall and /dev/userfaultfd", () => {
  for (const via of ["syscall", "device"] as const) {
    const uffd = createUffd({ via });
    try {
      assert.equal(uffd.via, via);
      const api = uffdApi(uffd.fd);
      assert.ok(api.features & UFFD_FEATURE.WP_ASYNC, `WP_ASYNC missing from 0x${api.features.toString(16)}`);
      for (const name of ["EVENT_FORK", "EVENT_REMAP", "EVENT_REMOVE", "EVENT_UNMAP", "MISSING_SHMEM", "THREAD_ID", "WP_UNPOPULATED", "EXACT_ADDRESS", "MOVE"] as const) {
        assert.ok(featureNames(api.features).includes(name), name);
      }
      assert.ok(hasIoctl(api.ioctls, _UFFDIO.REGISTER) && hasIoctl(api.ioctls, _UFFDIO.API));
    } finally {
      fs.closeSync(uffd.fd);
    }
  }
});

test("a MISSING-registered page is refused until UFFDIO_COPY fills it; ZEROPAGE gives zeros", () => {
  withUffd(UFFD_FEATURE.SIGBUS, (fd) =>
    withPages(4, (m) => {
      const ioctls = uffdRegister(fd, m.addr, m.len, UFFDIO_REGISTER_MODE.MISSING);
      assert.ok(hasIoctl(ioctls, _UFFDIO.COPY) && hasIoctl(ioctls, _UFFDIO.ZEROPAGE) && hasIoctl(ioctls, _UFFDIO.WAKE));
      // with UFFD_FEATURE_SIGBUS a missing page is an error (EFAULT here), not a wait
      assert.throws(() => m.read(0, 16), { code: "EFAULT" });
      const data = Buffer.alloc(2 * PAGE_SIZE);
      for (let i = 0; i < data.length; i++) data[i] = i % 251;
      assert.equal(uffdCopy(fd, m.addr, data, data.length), data.length);
      assert.deepEqual(m.read(0, data.length), data);
      assert.throws(() => uffdCopy(fd, m.addr, data, PAGE_SIZE), { code: "EEXIST" });
      assert.equal(uffdZeropage(fd, m.page(2), PAGE_SIZE), PAGE_SIZE);
      assert.deepEqual(m.read(2 * PAGE_SIZE, PAGE_SIZE), Buffer.alloc(PAGE_SIZE));
      uffdWake(fd, m.addr, m.len); // nobody waits: harmless
      assert.deepEqual(readUffdMsgs(fd), []); // no fault, no event
      uffdUnregister(fd, m.addr, m.len);
      assert.deepEqual(m.read(3 * PAGE_SIZE, 4), Buffer.alloc(4)); // ordinary memory again
    }),
  );
});

test("UFFDIO_MOVE moves a page into a registered hole", () => {
  withUffd(UFFD_FEATURE.MOVE | UFFD_FEATURE.SIGBUS, (fd) =>
    withPages(1, (src) =>
      withPages(1, (dst) => {
        const page = Buffer.alloc(PAGE_SIZE, 0x42);
        src.write(0, page);
        uffdRegister(fd, dst.addr, dst.len, UFFDIO_REGISTER_MODE.MISSING);
        assert.equal(uffdMove(fd, dst.addr, src.addr, PAGE_SIZE), PAGE_SIZE);
        assert.deepEqual(dst.read(0, PAGE_SIZE), page);
        withPagemap((pm) => assert.deepEqual(pagemapScan(pm, src.addr, src.addr + PAGE_SIZE, { categoryMask: PAGE_IS.PRESENT }).regions, []));
      }),
    ),
  );
});

test("dirty tracking: WP_ASYNC write-protection, PAGEMAP_SCAN reads and re-arms the dirty set", () => {
  withUffd(UFFD_FEATURE.WP_ASYNC | UFFD_FEATURE.WP_UNPOPULATED, (fd) =>
    withPages(8, (m) =>
      withPagemap((pm) => {
        m.write(0, Buffer.alloc(4 * PAGE_SIZE, 1)); // half populated, half never touched
        uffdRegister(fd, m.addr, m.len, UFFDIO_REGISTER_MODE.WP);
        uffdWriteProtect(fd, m.addr, m.len, true);
        const dirty = () =>
          pageSpans(m, pagemapScan(pm, m.addr, m.addr + m.len, {
            flags: PM_SCAN.WP_MATCHING | PM_SCAN.CHECK_WPASYNC, categoryMask: PAGE_IS.WRITTEN,
          }).regions);
        assert.deepEqual(dirty(), []);
        m.write(1 * PAGE_SIZE, Buffer.from("a"));
        m.write(6 * PAGE_SIZE, Buffer.from("b"));
        assert.deepEqual(dirty(), [[1, 2], [6, 7]]);
        assert.deepEqual(dirty(), []); // the scan write-protected them again
        m.write(6 * PAGE_SIZE + 100, Buffer.from("c"));
        assert.deepEqual(dirty(), [[6, 7]]);
        const cats = pagemapScan(pm, m.addr, m.addr + m.len, { categoryAnyof: PAGE_IS.WPALLOWED }).regions;
        assert.deepEqual(pageSpans(m, cats), [[0, 8]]); // all of it is tracked
      }),
    ),
  );
});

test("struct uffd_msg is decoded for each event", () => {
  const msg = (event: number, words: (number | bigint)[]) => {
    const b = Buffer.alloc(32);
    b[0] = event;
    words.forEach((w, i) => b.writeBigUInt64LE(BigInt(w), 8 + i * 8));
    return b;
  };
  const pf = msg(0x12, [1, 0x7f0000001234, 4321]);
  assert.deepEqual(parseUffdMsg(pf), { event: "pagefault", address: 0x7f0000001234, flags: 1, tid: 4321, write: true, wp: false, minor: false });
  assert.deepEqual(parseUffdMsg(msg(0x13, [17])), { event: "fork", ufd: 17 });
  assert.deepEqual(parseUffdMsg(msg(0x14, [0x1000, 0x5000, 0x2000])), { event: "remap", from: 0x1000, to: 0x5000, len: 0x2000 });
  assert.deepEqual(parseUffdMsg(msg(0x15, [0x1000, 0x3000])), { event: "remove", start: 0x1000, end: 0x3000 });
  assert.deepEqual(parseUffdMsg(msg(0x16, [0x4000, 0x6000])), { event: "unmap", start: 0x4000, end: 0x6000 });
  assert.deepEqual(parseUffdMsg(msg(0x77, [])), { event: "unknown", code: 0x77 });
  // messages sit back to back in a read buffer
  assert.deepEqual(parseUffdMsg(Buffer.concat([msg(0x16, [1, 2]), pf]), 32).event, "pagefault");
});
