import net from "node:net";
import { FerryError } from "../errors.js";
import { formatEndpoint, type Endpoint } from "./endpoint.js";
import { defaultKeyFile, loadKeyFile } from "./keys.js";
import { pskTransport } from "./tlsPsk.js";

/**
 * How ferry opens connections between hosts. Everything above this file sees a Duplex stream
 * (net.Socket or tls.TLSSocket) and never creates sockets itself, so an authenticated,
 * encrypted transport (TLS with a pre-shared key) plugs in here without touching the protocol.
 */
export interface Transport {
  readonly name: string;
  /**
   * Connect; rejects on failure (refused, unreachable, handshake failed). With `onread` the socket
   * reads into the buffers it gives (net.Socket's onread option) and emits no "data".
   */
  connect(ep: Endpoint, onread?: net.OnReadOpts): Promise<net.Socket>;
  /** Listen; `onConnection` receives every accepted (and, for secure transports, authenticated) peer. */
  listen(ep: Endpoint, onConnection: (socket: net.Socket) => void): Promise<net.Server>;
}

/** Low latency for small requests: no Nagle delay, no delayed coalescing of fault replies. */
function tune(socket: net.Socket): net.Socket {
  socket.setNoDelay(true);
  return socket;
}

/** An accepted peer must say something this soon (ferry's clients send HELLO at once). */
export const FIRST_WORD_MS = 5000;

/**
 * Drop an accepted peer that connects and says nothing (a port scanner, a stuck client): it
 * would hold a socket forever. Counts bytes instead of reading, so the protocol still gets all.
 */
export function dropIfSilent(socket: net.Socket, ms = FIRST_WORD_MS, log?: (line: string) => void): void {
  const before = socket.bytesRead;
  const timer = setTimeout(() => {
    if (socket.bytesRead !== before || socket.destroyed) return;
    log?.(`dropped a connection from ${socket.remoteAddress ?? "?"}: it said nothing within ${ms / 1000} s`);
    socket.destroy();
  }, ms);
  timer.unref();
  socket.once("close", () => clearTimeout(timer));
}

/** Plain TCP, for any address: use only through openTransport({ insecure }), which checks where. */
export const plainTcp: Transport = {
  name: "tcp",
  connect(ep, onread) {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: ep.host, port: ep.port, onread });
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
      const server = net.createServer((s) => {
        dropIfSilent(s);
        onConnection(tune(s));
      });
      server.once("error", reject);
      server.listen({ host: ep.host, port: ep.port, exclusive: true }, () => {
        server.off("error", reject);
        resolve(server);
      });
    });
  },
};

export interface SecurityOptions {
  /** the pre-shared key file (default: $FERRY_KEY, else ~/.config/ferry/key) */
  keyFile?: string;
  /** plain TCP: true on loopback addresses only, "force" anywhere */
  insecure?: boolean | "force";
  /** told of peers refused before anything was sent */
  log?: (line: string) => void;
  /** where it will listen or connect: checked now, before the caller starts anything */
  endpoints?: Endpoint[];
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms: traffic that never leaves this machine's kernel. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^::ffff:/, "");
  return h === "localhost" || h === "::1" || (net.isIPv4(h) && h.startsWith("127."));
}

function loopbackOnly(ep: Endpoint): void {
  if (!isLoopback(ep.host)) {
    throw new FerryError("FERRY_INSECURE_REFUSED", `--insecure sends memory in clear: refused on ${formatEndpoint(ep)}, which is not a loopback address (--insecure=force if you really mean it)`);
  }
}

/**
 * The one place every ferry connection comes from: TLS 1.3 with the pre-shared key unless plain
 * TCP is asked for, and plain TCP only on loopback unless forced. Loads (and checks) the key now,
 * so a missing key is reported before anything starts.
 */
export function openTransport(opts: SecurityOptions = {}): Transport {
  if (opts.insecure === "force") return plainTcp;
  if (opts.insecure) {
    opts.endpoints?.forEach(loopbackOnly);
    return {
      name: "tcp-loopback",
      connect: async (ep, onread) => (loopbackOnly(ep), plainTcp.connect(ep, onread)),
      listen: async (ep, on) => (loopbackOnly(ep), plainTcp.listen(ep, on)),
    };
  }
  return pskTransport(loadKeyFile(opts.keyFile ?? defaultKeyFile()), { log: opts.log });
}

/** The transport used when the caller does not choose one: authenticated and encrypted. */
export function defaultTransport(): Transport {
  return openTransport();
}
