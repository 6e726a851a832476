import { randomBytes } from "node:crypto";
import type net from "node:net";
import { FerryError } from "../src/errors.js";
import { parseEndpoint } from "../src/net/endpoint.js";
import { openTransport, type Transport } from "../src/net/transport.js";

/**
 * The physical limit of a migration between the two hosts: how fast one connection carries bytes
 * from hA to hB over the veth (MTU 1500), plain TCP and TLS with ferry's pre-shared key (what
 * `ferry migrate` uses), in the same run. The receiver (in hB) answers one byte once it has all
 * of them; the time counts from the first write to that answer. Random bytes: nothing on the
 * way can make them smaller.
 */
export interface LinkProbe {
  /** bytes moved by each try */
  bytes: number;
  tcpGBps: number;
  tlsGBps: number;
}

const CHUNK = 1 << 20;

function transportFor(kind: string, keyFile: string): Transport {
  if (kind === "tcp") return openTransport({ insecure: "force" });
  if (kind === "tls") return openTransport({ keyFile });
  throw new FerryError("FERRY_USAGE", `link probe: transport ${kind} (tcp, tls)`);
}

/** hB: accept `tries` connections one after the other, read `bytes` from each, answer one byte. */
export async function linkReceive(listen: string, kind: string, keyFile: string, bytes: number, tries: number, onListening: () => void): Promise<void> {
  const transport = transportFor(kind, keyFile);
  let served = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const server = await transport.listen(parseEndpoint(listen), (socket: net.Socket) => {
    let got = 0;
    socket.on("data", (d: Buffer) => {
      got += d.length;
      if (got >= bytes) socket.end("k");
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      if (++served >= tries) done();
    });
  });
  onListening();
  await finished;
  server.close();
}

/** hA: send `bytes` `tries` times, each on a new connection; the best rate in GB/s. */
export async function linkSend(to: string, kind: string, keyFile: string, bytes: number, tries: number): Promise<number> {
  const transport = transportFor(kind, keyFile);
  const data = randomBytes(CHUNK);
  let best = 0;
  for (let i = 0; i < tries; i++) {
    const socket = await transport.connect(parseEndpoint(to));
    const answered = new Promise<void>((resolve, reject) => {
      socket.once("data", () => resolve());
      socket.once("error", reject);
      socket.once("close", () => reject(new FerryError("FERRY_BENCH", "link probe: the receiver closed before it had every byte")));
    });
    const t0 = performance.now();
    for (let sent = 0; sent < bytes; sent += CHUNK) {
      if (!socket.write(data.subarray(0, Math.min(CHUNK, bytes - sent)))) await new Promise((r) => socket.once("drain", r));
    }
    await answered;
    best = Math.max(best, bytes / ((performance.now() - t0) * 1e6));
    socket.destroy();
  }
  return best;
}
