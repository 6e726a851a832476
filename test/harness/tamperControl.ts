/**
 * A man in the middle of `ferry migrate`'s control connection (plain TCP: --insecure), for the
 * test of a pre-copy agent that lacks pages: `node dropKept.js LISTEN_HOST LISTEN_PORT TO_HOST TO_PORT`.
 * It passes every frame on unchanged, except the source's RESTORE: its `keep` ranges (the pages
 * the agent holds from the rounds and installs after the resume) lose the first page of every
 * 16, as a source with a bug would send them. The images still list those pages as having data:
 * at the agent they are pages neither held nor zero. Prints `listening`, then
 * `RESTORE: N of M kept pages taken out`; ends when the connection does.
 */
import net from "node:net";
import { HEADER_SIZE } from "../../src/net/framing.js";
import { MCMD } from "../../src/migrate/protocol.js";

const PAGE = 4096;
const [host, port, toHost, toPort] = process.argv.slice(2);

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
      if (!agent.write(tamper(frame))) source.pause();
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

function tamper(frame: Buffer): Buffer {
  if (frame.readUInt16LE(0) !== MCMD.RESTORE) return frame;
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
