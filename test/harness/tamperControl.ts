/**
 * A man in the middle of `ferry migrate`'s control connection (plain TCP: --insecure), for the
 * tests of a pre-copy agent that lacks pages, as a source with a bug would leave it:
 * `node tamperControl.js MODE LISTEN_HOST LISTEN_PORT TO_HOST TO_PORT`. Every frame goes on
 * unchanged but for what MODE changes:
 *   cut-keep    RESTORE's `keep` ranges (the pages the agent holds from the rounds and installs
 *               after the resume) lose the first page of every 16; the images still list them as
 *               having data: at the agent they are pages neither held nor zero. Prints
 *               `RESTORE: N of M kept pages taken out`.
 *   drop-pages  the 20th full PAGES frame (256 pages) of the rounds never arrives, though RESTORE
 *               says the agent holds its pages: with migrate_hot, 1 MiB in the middle of its cold
 *               set, never written again, so never sent again. Prints `dropped N pages at 0xADDR`.
 * Prints `listening` first; ends when the connection does.
 */
import net from "node:net";
import { HEADER_SIZE } from "../../src/net/framing.js";
import { MAX_PAGES, MCMD } from "../../src/migrate/protocol.js";

const PAGE = 4096;
const [mode, host, port, toHost, toPort] = process.argv.slice(2);
let fullFrames = 0;

const server = net.createServer((source) => {
  server.close(); // one migration
  const agent = net.connect({ host: toHost, port: Number(toPort) });
  agent.pipe(source);
  let pending = Buffer.alloc(0);
  source.on("data", (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= HEADER_SIZE) {
      const len = pending.readUInt32LE(24);
      if (pending.length < HEADER_SIZE + len) break;
      const frame = pending.subarray(0, HEADER_SIZE + len);
      pending = pending.subarray(HEADER_SIZE + len);
      const out = tamper(frame);
      if (out && !agent.write(out)) source.pause();
    }
  });
  agent.on("drain", () => source.resume());
  source.on("end", () => agent.end());
  const close = () => {
    source.destroy();
    agent.destroy();
  };
  source.on("error", close);
  agent.on("error", close);
  source.on("close", close);
  agent.on("close", close);
});

function tamper(frame: Buffer): Buffer | null {
  const cmd = frame.readUInt16LE(0);
  if (mode === "drop-pages" && cmd === MCMD.PAGES && frame.readUInt32LE(4) === MAX_PAGES && ++fullFrames === 20) {
    process.stdout.write(`dropped ${frame.readUInt32LE(4)} pages at 0x${frame.readBigUInt64LE(8).toString(16)}\n`);
    return null;
  }
  if (mode !== "cut-keep" || cmd !== MCMD.RESTORE) return frame;
  const request = JSON.parse(frame.subarray(HEADER_SIZE).toString()) as { keep?: [number, number][] };
  const before = (request.keep ?? []).reduce((n, [, pages]) => n + pages, 0);
  const keep: [number, number][] = [];
  for (const [start, pages] of request.keep ?? []) {
    for (let k = 0; k < pages; k += 16) if (pages - k > 1) keep.push([start + (k + 1) * PAGE, Math.min(15, pages - k - 1)]);
  }
  request.keep = keep;
  const after = keep.reduce((n, [, pages]) => n + pages, 0);
  process.stdout.write(`RESTORE: ${before - after} of ${before} kept pages taken out\n`);
  const payload = Buffer.from(JSON.stringify(request));
  const header = Buffer.from(frame.subarray(0, HEADER_SIZE));
  header.writeUInt32LE(payload.length, 24);
  return Buffer.concat([header, payload]);
}

server.listen(Number(port), host, () => process.stdout.write("listening\n"));
