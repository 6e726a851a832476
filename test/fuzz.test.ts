/**
 * Property-based robustness: random and mutated images and frames thrown at the image reader
 * and the wire decoders. Whatever comes in, the only failure allowed is a FerryError with a
 * message that says where (the file, the offset), nothing hangs, and no length read from the
 * input is allocated before it was checked.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { FerryError } from "../src/errors.js";
import { ImageDir, crc32, decodeFramed, type MessageName } from "../src/images/store.js";
import { PagesReader, PagesWriter } from "../src/images/pages.js";
import type { PageRunImage } from "../src/images/types.js";
import { FrameDecoder, HEADER_SIZE, encodeFrame, encodeHeader, type Frame } from "../src/net/framing.js";
import { CMD, MAX_PAYLOAD, PROTOCOL_VERSION, decodeRanges, encodeRanges, payloadLimit } from "../src/lazy/protocol.js";
import { PageIndex } from "../src/lazy/pageIndex.js";
import { PageServer } from "../src/lazy/pageServer.js";
import type { FrozenProcess } from "../src/lazy/frozen.js";
import { LazyPagesDaemon } from "../src/lazy/daemon.js";
import type { LazyImages } from "../src/lazy/images.js";
import { openTransport } from "../src/net/transport.js";
import { tempDir } from "./harness/ferry.js";

const dir = tempDir("ferry-fuzz-");
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const RUNS = Number(process.env.FERRY_FUZZ_RUNS ?? 300);
const MESSAGES: MessageName[] = ["Inventory", "Core", "Mm", "PageMap", "FdTable", "Files"];

/** Run `fn`; it may return or throw a FerryError whose message names `where`: anything else fails. */
function onlyFerryErrors(fn: () => unknown, where: string | RegExp): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof FerryError)) throw new Error(`not a FerryError: ${(e as Error)?.stack ?? String(e)}`);
    if (typeof where === "string") assert.ok(e.message.includes(where), `the error names ${where}: ${e.message}`);
    else assert.match(e.message, where);
  }
}

/** Bytes of a run handed to PagesReader's sink (mapped runs carry `len`, read ones `data`). */
const lenOf = (m: object) => (m as { len?: number }).len ?? (m as { data: Buffer }).data.length;

/** A well-formed framed image: magic, version, crc32, length, payload. */
function frame(payload: Uint8Array, version = 1): Buffer {
  const h = Buffer.alloc(20);
  h.write("FERRYIMG", 0);
  h.writeUInt32LE(version, 8);
  h.writeUInt32LE(crc32(payload), 12);
  h.writeUInt32LE(payload.length, 16);
  return Buffer.concat([h, payload]);
}

/** Real images of every kind, written by ImageDir from small but non-trivial objects. */
const samples = (() => {
  const images = ImageDir.create(path.join(dir, "samples"));
  const objs: Record<MessageName, object> = {
    Inventory: { formatVersion: 1, ferryVersion: "0.1.0", arch: "x86_64", kernel: "6.18", rootPid: 42, pids: [42, 43], lazy: true },
    Core: { pid: 42, ppid: 1, comm: "victim", cwd: "/tmp", threads: [{ tid: 42, regs: Buffer.alloc(216, 1), xstate: Buffer.alloc(64, 2) }] },
    Mm: { vmas: [{ start: 0x400000, end: 0x401000, prot: 5, flags: 2, lazy: true }] },
    PageMap: { runs: [{ vaddr: 0x400000, nrPages: 1, offset: 0, crc32: 7 }], lazyRuns: [{ vaddr: 0x7f0000, nrPages: 4 }], lazyPages: 4 },
    FdTable: {},
    Files: {},
  };
  const out = new Map<MessageName, Buffer>();
  for (const m of MESSAGES) {
    images.write(`${m}.img`, m, objs[m]);
    out.set(m, fs.readFileSync(images.path(`${m}.img`)));
  }
  return out;
})();

test("image files and the image directory are created 0600/0700, even when a file of that name was there with looser modes", () => {
  const d = path.join(dir, "modes", "images");
  const images = ImageDir.create(d);
  fs.writeFileSync(images.path("inventory.img"), "old", { mode: 0o644 });
  fs.chmodSync(images.path("inventory.img"), 0o644);
  images.write("inventory.img", "Inventory", { rootPid: 1 });
  fs.writeFileSync(images.path("pages-1.img"), "old", { mode: 0o666 });
  fs.chmodSync(images.path("pages-1.img"), 0o666);
  new PagesWriter(images.path("pages-1.img")).close();
  assert.equal(fs.statSync(d).mode & 0o777, 0o700);
  assert.equal(fs.statSync(path.dirname(d)).mode & 0o777, 0o700, "parents ferry creates too");
  for (const f of fs.readdirSync(d)) assert.equal(fs.statSync(path.join(d, f)).mode & 0o777, 0o600, f);
});

test("decodeFramed, every message type: random bytes, random payloads behind a valid header, mutated real images", () => {
  const file = "/images/x.img";
  const mutation = fc.record({
    kind: fc.constantFrom(...MESSAGES),
    edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
    cut: fc.option(fc.nat()),
    extra: fc.uint8Array({ maxLength: 16 }),
    reframe: fc.boolean(),
  });
  fc.assert(fc.property(fc.constantFrom(...MESSAGES), fc.uint8Array({ maxLength: 512 }), (m, bytes) => {
    onlyFerryErrors(() => decodeFramed(Buffer.from(bytes), file, m), `${file}: `);
    onlyFerryErrors(() => decodeFramed(frame(bytes), file, m), `${file}: `);
  }), { numRuns: RUNS * 4 });
  fc.assert(fc.property(mutation, ({ kind, edits, cut, extra, reframe }) => {
    const real = samples.get(kind)!;
    let payload = Buffer.from(real.subarray(20));
    for (const [at, v] of edits) if (payload.length) payload[at % payload.length] = v;
    if (cut !== null) payload = payload.subarray(0, cut % (payload.length + 1));
    payload = Buffer.concat([payload, extra]);
    // with the old checksum the damage is caught by it; re-framed, protobuf itself must cope
    const img = reframe ? frame(payload) : Buffer.concat([real.subarray(0, 20), payload]);
    onlyFerryErrors(() => decodeFramed(img, file, kind), /^\/images\/x\.img: .*offset \d+/);
  }), { numRuns: RUNS * 4 });
});

test("a framed image claiming a 4 GiB payload is refused from its 20-byte header", () => {
  const h = frame(Buffer.alloc(0));
  h.writeUInt32LE(0xffffffff, 16);
  assert.throws(() => decodeFramed(h, "/i/big.img", "Core"), (e: Error) => e instanceof FerryError && /big\.img: .*offset 16/.test(e.message));
});

test("PagesReader: random run tables and damaged page files give FerryErrors naming the file and offset, never wrong data", () => {
  const file = path.join(dir, "pages-fuzz.img");
  const w = new PagesWriter(file);
  const data = Buffer.alloc(8 * 4096);
  for (let i = 0; i < data.length; i += 4096) data.fill(i / 4096 + 1, i, i + 4096);
  w.addBatch(data, [{ addr: 0x10000, len: 4 * 4096 }, { addr: 0x40000, len: 4 * 4096 }]);
  w.close();
  const good = w.runs;
  const num = fc.oneof(fc.integer({ min: -2, max: 40000 }), fc.constantFrom(NaN, Infinity, -4096, 2 ** 53, 2 ** 64, 0x7fffffff * 4096), fc.nat().map((n) => n * 4096));
  const run = fc.record({ vaddr: num, nrPages: num, offset: num, crc32: fc.oneof(fc.nat(), fc.constantFrom(...good.map((r) => r.crc32))) });
  const oneFieldOff = fc.record({ g: fc.constantFrom(...good), field: fc.constantFrom("vaddr", "nrPages", "offset"), v: num }).map(({ g, field, v }) => ({ ...g, [field]: v }));
  fc.assert(fc.property(fc.array(fc.oneof(run, oneFieldOff, fc.constantFrom(...good)), { maxLength: 6 }), (runs: PageRunImage[]) => {
    const r = new PagesReader(file);
    try {
      onlyFerryErrors(() => r.forEach(runs, (mapped) => {
        for (const m of mapped) {
          const asked = runs.filter((r) => r.vaddr === m.vaddr && r.nrPages * 4096 === lenOf(m));
          const verified = asked.some((r) => good.some((g) => g.offset === r.offset && g.nrPages === r.nrPages && g.crc32 === r.crc32));
          assert.ok(verified, "only whole runs whose data matched their checksum reach the sink");
        }
      }), `${file}: `);
    } finally {
      r.close();
    }
  }), { numRuns: RUNS });
  // one flipped byte anywhere: the run holding it is refused, by file and offset
  fc.assert(fc.property(fc.integer({ min: 0, max: data.length - 1 }), (at) => {
    const bad = path.join(dir, "pages-flipped.img");
    const copy = fs.readFileSync(file);
    copy[at] ^= 0x40;
    fs.writeFileSync(bad, copy);
    const r = new PagesReader(bad);
    try {
      assert.throws(() => r.forEach(good, () => {}), new RegExp(`${bad}: checksum mismatch at offset ${Math.floor(at / 16384) * 16384}`));
    } finally {
      r.close();
    }
  }), { numRuns: 40 });
});

const limits = payloadLimit;
const header = fc.record({
  cmd: fc.oneof(fc.constantFrom(...Object.values(CMD)), fc.integer({ min: 0, max: 0xffff })),
  flags: fc.integer({ min: 0, max: 0xffff }),
  nrPages: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constant(0xffffffff)),
  vaddr: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
  id: fc.nat(),
});
const frameUpTo = (bytes: number) => header.chain((h) => fc.uint8Array({ maxLength: Math.min(limits(h.cmd) ?? 0, bytes) }).map((p) => encodeFrame(h, Buffer.from(p))));
const validFrame = frameUpTo(4096);

/**
 * Feed `bytes` to a decoder in reads of the sizes `cuts` (cycled): as stream chunks (push), or
 * as a socket with `onread` does, into the buffer the decoder gives for each read (readTarget).
 */
function feed(d: FrameDecoder, bytes: Buffer, cuts: number[], how: "chunks" | "onread"): void {
  let off = 0, i = 0;
  while (off < bytes.length) {
    const n = Math.min(cuts[i++ % cuts.length], bytes.length - off);
    if (how === "chunks") d.push(bytes.subarray(off, off + n));
    else {
      const target = d.readTarget();
      const k = bytes.copy(target, 0, off, off + Math.min(n, target.length));
      d.wrote(k);
      off -= n - k;
    }
    off += n;
  }
}

for (const how of ["chunks", "onread"] as const) {
  test(`FrameDecoder (${how}): valid frames in any chunking arrive whole; mutated streams end in FERRY_PROTOCOL, never another error`, () => {
    // large payloads too: read straight into their place when onread
    fc.assert(fc.property(fc.array(how === "onread" ? frameUpTo(40_000) : validFrame, { maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 8 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), (frames, cuts, edits) => {
      const stream = Buffer.concat(frames);
      const mutated = Buffer.from(stream);
      for (const [at, v] of edits) if (mutated.length) mutated[at % mutated.length] = v;
      for (const bytes of [stream, mutated]) {
        const got: Frame[] = [];
        const d = new FrameDecoder(limits, (f) => got.push({ ...f, payload: Buffer.from(f.payload) }), MAX_PAYLOAD);
        onlyFerryErrors(() => feed(d, bytes, cuts, how), /peer|frame|command/);
        if (bytes === stream && frames.every((f) => limits(f.readUInt16LE(0)) !== undefined && f.length - HEADER_SIZE <= limits(f.readUInt16LE(0))!)) {
          assert.deepEqual(Buffer.concat(got.map((f) => encodeFrame(f, f.payload))), stream, "what arrives is what was sent");
        }
      }
    }), { numRuns: RUNS * 2 });
  });
}

test("a frame header claiming 4 GiB (or more than its command allows) is refused from its 32 bytes, before any allocation", () => {
  for (const cmd of [CMD.PAGES, CMD.HELLO, CMD.GET, CMD.PENDING]) {
    for (const len of [0xffffffff, limits(cmd)! + 1]) {
      const h = Buffer.alloc(HEADER_SIZE);
      encodeHeader({ cmd, flags: 0, nrPages: 1, vaddr: 0, id: 0 }, 0, h);
      h.writeUInt32LE(len, 24);
      const before = process.memoryUsage().arrayBuffers;
      const d = new FrameDecoder(limits, () => assert.fail("no frame"), MAX_PAYLOAD);
      assert.throws(() => d.push(h), (e: Error) => e instanceof FerryError && /claims \d+ bytes \(at most \d+ allowed\)/.test(e.message));
      assert.ok(process.memoryUsage().arrayBuffers - before < 8 << 20, "nothing near the claimed size was allocated");
    }
  }
});

test("range lists and the page index take any numbers without throwing or looping", () => {
  const index = new PageIndex([{ vaddr: 0x10000, nrPages: 16 }, { vaddr: 0x100000, nrPages: 4 }]);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
    for (const r of decodeRanges(Buffer.from(bytes))) {
      const [a, b] = index.indexRange(r.vaddr, r.vaddr + r.nrPages * 4096);
      assert.ok(a >= 0 && b <= index.total && a <= b, `indexRange(${r.vaddr}, +${r.nrPages}) = [${a}, ${b}]`);
      const i = index.indexOf(r.vaddr);
      assert.ok(i >= -1 && i < index.total);
    }
  }), { numRuns: RUNS });
});

/** A page server that has not started listening, fed frames straight from a fake channel. */
function pageServerUnderFuzz() {
  const killed: number[] = [];
  const process_ = { pid: process.pid, kill: () => killed.push(1), release: () => {} } as unknown as FrozenProcess;
  const index = new PageIndex([{ vaddr: 0x1000, nrPages: 8 }, { vaddr: 0x100000, nrPages: 300 }]);
  const server = new PageServer({ process: process_, index, listen: { host: "127.0.0.1", port: 0 }, retryForMs: 1000 });
  const closed: string[] = [];
  const ch = {
    isOpen: true, needsDrain: false, queued: 0, socket: { remoteAddress: "fuzz", once() {}, pause() {}, resume() {} },
    send: () => true, end() {}, close(why: string) {
      closed.push(why);
      this.isOpen = false;
    },
  };
  const s = server as unknown as { hello(c: unknown, f: Frame): unknown; onFrame(c: unknown, f: Frame): void };
  return { s, ch, closed, killed };
}

test("the page server takes random HELLOs and frames: refuses or closes, never throws", () => {
  const hello = fc.oneof(
    fc.constant(JSON.stringify({ version: PROTOCOL_VERSION, role: "fault", pid: process.pid, session: "x", maxRate: 0 })),
    fc.json(), fc.string(),
  );
  const anyFrame = fc.record({ h: header, payload: fc.uint8Array({ maxLength: 256 }) }).map(({ h, payload }) => ({ ...h, payload: Buffer.from(payload) }));
  const rangesFrame = fc.array(fc.record({ vaddr: fc.oneof(fc.nat(), fc.constant(0x100000)), nrPages: fc.oneof(fc.nat(), fc.constant(2 ** 40)) }), { maxLength: 8 })
    .map((r) => ({ cmd: CMD.PENDING, flags: 2, nrPages: 0, vaddr: 0, id: 0, payload: encodeRanges(r) }));
  fc.assert(fc.property(hello, fc.array(fc.oneof(anyFrame, rangesFrame), { maxLength: 10 }), (helloText, frames) => {
    const { s, ch, killed } = pageServerUnderFuzz();
    const role = s.hello(ch, { cmd: CMD.HELLO, flags: 0, nrPages: 0, vaddr: 0, id: 0, payload: Buffer.from(helloText) });
    if (role === null) return;
    for (const f of frames) {
      if (!ch.isOpen) break;
      s.onFrame(ch, f);
    }
    if (!frames.some((f) => f.cmd === CMD.DONE)) assert.equal(killed.length, 0, "the source is killed only on DONE");
  }), { numRuns: RUNS });
});

test("the lazy-pages daemon takes random PAGES frames: installs what is well-formed, refuses the rest with FERRY_PROTOCOL", () => {
  const index = new PageIndex([{ vaddr: 0x10000, nrPages: 8 }, { vaddr: 0x100000, nrPages: 300 }]);
  const images = { dir, pid: 1, index, vmas: [], imageBytes: 0, inventory: {} } as unknown as LazyImages;
  const daemon = new LazyPagesDaemon({ images, pageServer: { host: "127.0.0.1", port: 9 }, transport: openTransport({ insecure: true }), retryForMs: 0, log: () => {} });
  const d = daemon as unknown as { onPages(f: Frame, fromBulk: boolean): void };
  const pages = fc.record({
    vaddr: fc.oneof(fc.constantFrom(0x10000, 0x12000, 0x100000, 0x1000, 0x17000), fc.nat()),
    nrPages: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constant(0xffffffff)),
    flags: fc.integer({ min: 0, max: 7 }),
    bitmap: fc.uint8Array({ maxLength: 40 }),
    dataPages: fc.integer({ min: 0, max: 3 }),
    fromBulk: fc.boolean(),
  });
  fc.assert(fc.property(pages, ({ vaddr, nrPages, flags, bitmap, dataPages, fromBulk }) => {
    const payload = Buffer.concat([Buffer.from(bitmap), Buffer.alloc(dataPages * 4096, 0x11)]);
    try {
      d.onPages({ cmd: CMD.PAGES, flags, nrPages, vaddr, id: 1, payload }, fromBulk);
    } catch (e) {
      assert.ok(e instanceof FerryError && e.code === "FERRY_PROTOCOL", `only FERRY_PROTOCOL: ${(e as Error).stack}`);
    }
  }), { numRuns: RUNS });
});
