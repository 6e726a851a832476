import net from "node:net";
import type { Endpoint } from "./endpoint.js";

/**
 * How ferry opens connections between hosts. Everything above this file sees a Duplex stream
 * (net.Socket or tls.TLSSocket) and never creates sockets itself, so an authenticated,
 * encrypted transport (TLS with a pre-shared key) plugs in here without touching the protocol.
 */
export interface Transport {
  readonly name: string;
  /** Connect; rejects on failure (refused, unreachable, handshake failed). */
  connect(ep: Endpoint): Promise<net.Socket>;
  /** Listen; `onConnection` receives every accepted (and, for secure transports, authenticated) peer. */
  listen(ep: Endpoint, onConnection: (socket: net.Socket) => void): Promise<net.Server>;
}

/** Low latency for small requests: no Nagle delay, no delayed coalescing of fault replies. */
function tune(socket: net.Socket): net.Socket {
  socket.setNoDelay(true);
  return socket;
}

/** Plain TCP (`--insecure` once secure transports exist). */
export const plainTcp: Transport = {
  name: "tcp",
  connect(ep) {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: ep.host, port: ep.port });
      const fail = (e: Error) => {
        socket.destroy();
        reject(e);
      };
      socket.once("error", fail);
      socket.once("connect", () => {
        socket.off("error", fail);
        resolve(tune(socket));
      });
    });
  },
  listen(ep, onConnection) {
    return new Promise((resolve, reject) => {
      const server = net.createServer((s) => onConnection(tune(s)));
      server.once("error", reject);
      server.listen({ host: ep.host, port: ep.port, exclusive: true }, () => {
        server.off("error", reject);
        resolve(server);
      });
    });
  },
};

/** The transport used when the caller does not choose one. */
export function defaultTransport(): Transport {
  return plainTcp;
}
