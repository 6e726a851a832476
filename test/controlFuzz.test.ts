/**
 * Property-based robustness of the one-command migration's control protocol (src/migrate):
 * random and mutated frames at the agent's decoder (a whole agentSession on a real connection)
 * and at the source's (its Control reading HELLO_OK, RESTORED and DONE, with the parsers
 * migrate() uses), and at the JSON parsers and the page store directly. The only failure allowed
 * is a FerryError (FERRY_PROTOCOL, or the connection ending), within a bounded time: no crash, no
 * hang, no allocation sized by an unchecked number.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import fc from "fast-check";
import { FerryError } from "../src/errors.js";
import { encodeFrame, type FrameHeader } from "../src/net/framing.js";
import { openTransport } from "../src/net/transport.js";
import { Control } from "../src/migrate/control.js";
import { agentSession } from "../src/migrate/agent.js";
import { PageStore } from "../src/migrate/pageStore.js";
import { ImageReceiver } from "../src/migrate/imageStream.js";
import {
  MCMD, MIGRATE_VERSION, MAX_PAGES, bitmapBytes, controlLimit, parseDone, parseFileHeader, parseHello, parseHelloOk, parseMessage,
  parseRestoreRequest, parseRestored,
} from "../src/migrate/protocol.js";
import { tempDir } from "./harness/ferry.js";

const RUNS = Number(process.env.FERRY_FUZZ_RUNS ?? 300);
const dir = tempDir("ferry-control-fuzz-");
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const transport = openTransport({ insecure: true });
/** a PID no process has here (the top of the largest pid_max) */
const FREE_PID = 4194303;

/** A connected pair of TCP sockets on loopback. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
  const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  const [a] = await Promise.all([accepted, new Promise((r) => client.once("connect", r))]);
  server.close();
  return [a, client];
}

/** `p` settles within `ms`, and only ever as a FerryError. */
async function onlyFerryErrorsWithin(p: Promise<unknown>, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} hung for ${ms} ms`)), ms)));
  try {
    await Promise.race([p, timeout]);
  } catch (e) {
    if (!(e instanceof FerryError)) throw new Error(`${what}: not a FerryError: ${(e as Error)?.stack ?? String(e)}`);
  } finally {
    clearTimeout(timer);
  }
}

const json = (o: unknown) => Buffer.from(JSON.stringify(o));
const anyJson = fc.oneof(fc.json().map((t) => Buffer.from(t)), fc.string().map((t) => Buffer.from(t)), fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)));
const header = (cmd: fc.Arbitrary<number>): fc.Arbitrary<FrameHeader> => fc.record({
  cmd,
  flags: fc.integer({ min: 0, max: 0xffff }),
  nrPages: fc.oneof(fc.integer({ min: 0, max: MAX_PAGES + 2 }), fc.constant(0xffffffff)),
  vaddr: fc.oneof(fc.constantFrom(0, 0x10000, 0x7f0000001000), fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
  id: fc.nat(),
});
const frame = (cmd: fc.Arbitrary<number>, payload: fc.Arbitrary<Buffer>) => fc.tuple(header(cmd), payload).map(([h, p]) => encodeFrame(h, p));

/** What a source might send an agent, well-formed or not. */
const sourceFrame = fc.oneof(
  frame(fc.constant(MCMD.HELLO), fc.oneof(
    fc.record({ version: fc.constantFrom(MIGRATE_VERSION, 1, -1), mode: fc.constantFrom("lazy", "stop-copy", "precopy", "hybrid", "x"), pid: fc.constantFrom(FREE_PID, 0, 1, -5, 2 ** 40) }).map(json),
    anyJson,
  )),
  frame(fc.constant(MCMD.FILE), fc.oneof(
    fc.record({ name: fc.oneof(fc.constantFrom("inventory.img", "../x", ".hidden", "a/b", ""), fc.string({ maxLength: 300 })), size: fc.oneof(fc.nat(), fc.constantFrom(-1, 1.5, 2 ** 60, "12")) }).map(json),
    anyJson,
  )),
  frame(fc.constant(MCMD.DATA), fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b))),
  frame(fc.constant(MCMD.PAGES), fc.tuple(fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 0, max: 3 })).map(([bm, n]) => Buffer.concat([Buffer.from(bm), Buffer.alloc(n * 4096, 7)]))),
  frame(fc.constant(MCMD.RESTORE), fc.oneof(
    fc.record({ pageServerPort: fc.oneof(fc.constantFrom(0, 70000, "x"), fc.integer({ min: 1, max: 65535 })), keep: fc.oneof(fc.constant("x"), fc.array(fc.tuple(fc.oneof(fc.nat(), fc.constant(-4096)), fc.oneof(fc.nat(), fc.constant(2 ** 50))), { maxLength: 4 })) }, { requiredKeys: [] }).map(json),
    anyJson,
  )),
  frame(fc.constantFrom(MCMD.ABORT, MCMD.ERROR, MCMD.PING), anyJson),
  frame(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b))),
);

/** Stream `frames` (bytes mutated at `edits`) into `socket` in chunks, then close it. */
function feed(socket: net.Socket, frames: Buffer[], edits: [number, number][]): void {
  const stream = Buffer.concat(frames);
  for (const [at, v] of edits) if (stream.length) stream[at % stream.length] = v;
  socket.on("error", () => {});
  for (let off = 0; off < stream.length; off += 1000) socket.write(stream.subarray(off, off + 1000));
  socket.end();
}

test("the agent takes random and mutated control streams: every session ends in a FerryError, soon; nothing crashes", async () => {
  const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 });
  await fc.assert(fc.asyncProperty(fc.array(sourceFrame, { maxLength: 8 }), edits, async (frames, bytesEdits) => {
    const [agentSide, sourceSide] = await socketPair();
    const session = agentSession(agentSide, { transport, retryForMs: 0, keepImages: undefined, log: () => {} });
    feed(sourceSide, frames, bytesEdits);
    await onlyFerryErrorsWithin(session, 12_000, "agentSession");
    sourceSide.destroy();
  }), { numRuns: Math.max(50, RUNS / 2) });
});

/** What an agent might answer a source, well-formed or not. */
const agentFrame = fc.oneof(
  frame(fc.constant(MCMD.HELLO_OK), fc.oneof(fc.constant(json({ version: MIGRATE_VERSION })), anyJson)),
  frame(fc.constant(MCMD.RESTORED), fc.oneof(
    fc.record({ pid: fc.oneof(fc.nat(), fc.constant(-1)), resumedAtUs: fc.oneof(fc.nat(), fc.constant("x")), restoreMs: fc.double() }).map(json),
    anyJson,
  )),
  frame(fc.constant(MCMD.DONE), fc.oneof(fc.constant(Buffer.from("null")), fc.record({ outcome: fc.constantFrom("complete", "failed", "x"), faults: fc.oneof(fc.nat(), fc.constant("many")), error: fc.oneof(fc.string(), fc.nat()) }).map(json), anyJson)),
  frame(fc.constantFrom(MCMD.ERROR, MCMD.ABORT, MCMD.PING, MCMD.PAGES), anyJson),
  frame(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b))),
);

test("the source's side of the control connection takes random and mutated answers: FerryErrors only, soon", async () => {
  const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 });
  await fc.assert(fc.asyncProperty(fc.array(agentFrame, { maxLength: 6 }), edits, async (frames, bytesEdits) => {
    const [sourceSide, agentSide] = await socketPair();
    const control = new Control(sourceSide);
    // what migrate() reads, in its order, with its parsers
    const reading = (async () => {
      parseHelloOk((await control.expect(MCMD.HELLO_OK, 5_000)).payload);
      parseRestored((await control.expect(MCMD.RESTORED, 5_000)).payload);
      parseDone((await control.expect(MCMD.DONE, 5_000)).payload);
    })();
    feed(agentSide, frames, bytesEdits);
    await onlyFerryErrorsWithin(reading, 8_000, "the source's control");
    control.close();
    agentSide.destroy();
  }), { numRuns: RUNS });
});

test("the control parsers take any JSON: a value of the promised shape, or FERRY_PROTOCOL", () => {
  const parsers = [parseHello, parseHelloOk, parseFileHeader, parseRestoreRequest, parseRestored, parseDone, (b: Buffer) => parseMessage(b, "message")];
  fc.assert(fc.property(fc.oneof(fc.json(), fc.string(), fc.jsonValue().map((v) => JSON.stringify(v))), (text) => {
    for (const parse of parsers) {
      try {
        parse(Buffer.from(text));
      } catch (e) {
        assert.ok(e instanceof FerryError && e.code === "FERRY_PROTOCOL", `${parse.name}(${text}): ${(e as Error).stack}`);
      }
    }
  }), { numRuns: RUNS * 3 });
  const f = parseFileHeader(json({ name: "pages-1.img", size: 4096 }));
  assert.deepEqual(f, { name: "pages-1.img", size: 4096 });
  assert.throws(() => parseFileHeader(json({ name: "../etc/passwd", size: 1 })), /refusing image file name/);
  assert.throws(() => parseRestoreRequest(json({ keep: [[4097, 1]] })), /malformed RESTORE/);
  assert.throws(() => parseHello(json({ version: 2, mode: "hybrid", pid: "1" })), /malformed HELLO/);
});

test("PAGES frames at the agent's page store: kept when the count, the address and the length agree, FERRY_PROTOCOL otherwise, never a loop over a claimed count", () => {
  fc.assert(fc.property(
    fc.oneof(fc.integer({ min: 0, max: MAX_PAGES + 1 }), fc.constant(0xffffffff)),
    fc.oneof(fc.constantFrom(0x10000, 0x10001), fc.nat()),
    fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 0, max: 3 }),
    (nrPages, vaddr, bitmap, dataPages) => {
      const store = new PageStore();
      const payload = Buffer.concat([Buffer.from(bitmap), Buffer.alloc(dataPages * 4096, 1)]);
      try {
        store.add(vaddr, nrPages, payload);
      } catch (e) {
        assert.ok(e instanceof FerryError && e.code === "FERRY_PROTOCOL", (e as Error).stack);
        return;
      }
      assert.ok(nrPages >= 1 && nrPages <= MAX_PAGES && vaddr % 4096 === 0);
      let zeros = 0;
      for (let k = 0; k < nrPages; k++) if (payload[k >> 3] & (1 << (k & 7))) zeros++;
      assert.equal(payload.length, bitmapBytes(nrPages) + (nrPages - zeros) * 4096, "only a frame whose length matches its bitmap is kept");
      assert.equal(store.size, nrPages);
    }), { numRuns: RUNS * 2 });
});

test("image files from the wire: FILE/DATA in any order and size end in files of the announced size, or FERRY_PROTOCOL", () => {
  const ops = fc.array(fc.oneof(
    fc.record({ file: fc.record({ name: fc.constantFrom("a.img", "b.img", "../c", ""), size: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.constant(-1)) }) }),
    fc.record({ data: fc.integer({ min: 0, max: 2000 }) }),
  ), { maxLength: 8 });
  let n = 0;
  fc.assert(fc.property(ops, (list) => {
    const where = `${dir}/recv-${n++}`;
    fs.mkdirSync(where);
    const r = new ImageReceiver(where);
    try {
      for (const op of list) {
        if ("file" in op) r.take(MCMD.FILE, json(op.file));
        else r.take(MCMD.DATA, Buffer.alloc(op.data, 3));
      }
    } catch (e) {
      assert.ok(e instanceof FerryError && e.code === "FERRY_PROTOCOL", (e as Error).stack);
    } finally {
      r.close();
    }
    for (const name of fs.readdirSync(where)) assert.ok(/^[ab]\.img$/.test(name), `only plain names are written: ${name}`);
    fs.rmSync(where, { recursive: true });
  }), { numRuns: RUNS });
});

test("a control frame claiming more than its command allows is refused from its header", async () => {
  for (const cmd of [MCMD.DATA, MCMD.PAGES, MCMD.HELLO, MCMD.PING]) {
    const [sourceSide, agentSide] = await socketPair();
    const control = new Control(sourceSide);
    const h = encodeFrame({ cmd, flags: 0, nrPages: 1, vaddr: 0, id: 0 });
    h.writeUInt32LE(controlLimit(cmd)! + 1, 24);
    const before = process.memoryUsage().arrayBuffers;
    agentSide.on("error", () => {});
    agentSide.write(h);
    await assert.rejects(control.next(5_000), (e: Error) => e instanceof FerryError && /claims \d+ bytes \(at most \d+ allowed\)/.test(e.message));
    assert.ok(process.memoryUsage().arrayBuffers - before < 8 << 20, "nothing near the claimed size was allocated");
    control.close();
    agentSide.destroy();
  }
});
