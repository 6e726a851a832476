/**
 * A bulk stream of PAGES-sized frames through a ferry transport, to measure what encryption
 * costs: `node stream.js server|client tls|plain HOST PORT MIB [KEYFILE]`. The server prints
 * `listening`, then `MB/s N` once MIB MiB have arrived. Frames are the page server's pushed ones
 * (64 pages = 256 KiB + bitmap), sent as it sends them (header + payload, corked, drain-paced).
 */
import { FrameChannel } from "../../src/net/channel.js";
import { openTransport } from "../../src/net/transport.js";

const [role, mode, host, portText, mibText, keyFile] = process.argv.slice(2);
const transport = mode === "tls" ? openTransport({ keyFile }) : openTransport({ insecure: "force" });
const PAGES = 64;
const PAYLOAD = PAGES * 4096 + 8;
const total = Number(mibText) * (1 << 20);
const limits = () => PAYLOAD;

if (role === "server") {
  const server = await transport.listen({ host, port: Number(portText) }, (socket) => {
    let got = 0, t0 = 0;
    new FrameChannel(socket, limits, PAYLOAD, (f) => {
      t0 ||= performance.now();
      got += f.payload.length + 32;
      if (got < total) return;
      process.stdout.write(`MB/s ${(got / ((performance.now() - t0) / 1000) / 1e6).toFixed(0)}\n`);
      socket.destroy();
      server.close();
    }, () => {});
  });
  process.stdout.write("listening\n");
} else {
  const socket = await transport.connect({ host, port: Number(portText) });
  const ch = new FrameChannel(socket, limits, PAYLOAD, () => {}, () => {});
  const payload = Buffer.alloc(PAYLOAD, 0x5a);
  let sent = 0;
  const pump = () => {
    while (sent < total + PAYLOAD) {
      sent += PAYLOAD + 32;
      if (!ch.send({ cmd: 4, flags: 0, nrPages: PAGES, vaddr: 0, id: 0 }, payload)) return void socket.once("drain", pump);
    }
  };
  pump();
}
