/**
 * A misbehaving peer for the limits tests: `node badPeer.js MODE HOST PORT [KEYFILE]`.
 *   stall      connects (TCP) and says nothing
 *   junk       connects (TCP) and sends 64 KiB of garbage instead of a TLS handshake
 *   oversized  completes the TLS handshake with the key, then a frame header claiming 4 GiB
 * Prints `closed after N ms` when the other side drops it (or `still open` after 15 s).
 */
import net from "node:net";
import { HEADER_SIZE, encodeHeader } from "../../src/net/framing.js";
import { openTransport } from "../../src/net/transport.js";

const [mode, host, portText, keyFile] = process.argv.slice(2);
const ep = { host, port: Number(portText) };
const t0 = performance.now();
let socket: net.Socket;
if (mode === "oversized") {
  socket = await openTransport({ keyFile }).connect(ep);
  const h = encodeHeader({ cmd: 4, flags: 0, nrPages: 1, vaddr: 0, id: 0 }, 0, Buffer.alloc(HEADER_SIZE));
  h.writeUInt32LE(0xffffffff, 24);
  socket.write(h);
} else {
  socket = net.connect(ep);
  if (mode === "junk") socket.on("connect", () => socket.write(Buffer.alloc(64 << 10, 0xee)));
}
socket.on("error", () => {});
const timer = setTimeout(() => {
  process.stdout.write("still open\n");
  process.exit(0);
}, 15_000);
socket.on("close", () => {
  clearTimeout(timer);
  process.stdout.write(`closed after ${Math.round(performance.now() - t0)} ms\n`);
});
