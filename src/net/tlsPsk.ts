import net from "node:net";
import tls from "node:tls";
import { FerryError } from "../errors.js";
import { formatEndpoint, type Endpoint } from "./endpoint.js";
import type { PreSharedKey } from "./keys.js";
import { dropIfSilent, type Transport } from "./transport.js";

/**
 * TLS 1.3 with an external pre-shared key (RFC 8446 psk_dhe_ke: the key authenticates both
 * sides, an ECDHE exchange gives every connection its own keys). No certificates: both hosts hold
 * the same `ferry keygen` file. AES-128-GCM first (AES-NI), ChaCha20 for CPUs without it; both
 * use SHA-256, which a TLS 1.3 external PSK requires. Node 20 supports this through pskCallback.
 */
const TLS_OPTIONS = {
  minVersion: "TLSv1.3",
  maxVersion: "TLSv1.3",
  ciphers: "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256",
} as const;
/** A peer has this long to finish the handshake; one that stalls is dropped (it holds nothing). */
export const HANDSHAKE_TIMEOUT_MS = 5000;

/** The identity names the key (by its public id, never the key), so a wrong key is told as such. */
function identityOf(psk: PreSharedKey): string {
  return `ferry1:${psk.id}`;
}

function authError(ep: Endpoint, psk: PreSharedKey, e: Error): FerryError {
  const m = e.message;
  const who = formatEndpoint(ep);
  if (/psk identity|decrypt|bad record mac|alert (handshake failure|bad certificate|illegal parameter)|no shared cipher/i.test(m)) {
    return new FerryError("FERRY_AUTH", `the peer at ${who} does not hold our key (${psk.file}, id ${psk.id}): copy the same key file to both hosts`);
  }
  if (/wrong version number|unexpected eof|packet length too long|ECONNRESET|socket disconnected|no TLS handshake/i.test(m)) {
    return new FerryError("FERRY_AUTH", `the peer at ${who} did not complete a secure handshake (${sslReason(m)}): is it an older ferry, or started with --insecure?`);
  }
  return new FerryError("FERRY_CONNECT", `cannot reach ${who}: ${m}`);
}

/** OpenSSL's reason ("wrong version number") without its file and line. */
function sslReason(m: string): string {
  return /routines:(?:[^:]*:)?([^:]+)/.exec(m)?.[1] ?? m;
}

function tune<T extends net.Socket>(socket: T): T {
  socket.setNoDelay(true);
  return socket;
}

export interface PskTransportOptions {
  /** told of every peer refused before the handshake completed (wrong key, stalled, not TLS) */
  log?: (line: string) => void;
  handshakeTimeoutMs?: number;
}

export function pskTransport(psk: PreSharedKey, opts: PskTransportOptions = {}): Transport {
  const identity = identityOf(psk);
  const timeoutMs = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  return {
    name: "tls-psk",
    connect(ep, onread) {
      return new Promise((resolve, reject) => {
        // onread: tls.connect honours it (without a `socket` option) though @types/node does not say so
        const options: tls.ConnectionOptions & { onread?: net.OnReadOpts } = {
          ...TLS_OPTIONS, host: ep.host, port: ep.port, onread,
          pskCallback: () => ({ psk: psk.key, identity }),
          checkServerIdentity: () => undefined, // the key is the identity: there is no certificate
        };
        const socket = tls.connect(options);
        // counted from the TCP connection: a slow network is the retry logic's business, a peer
        // that accepts and then does not speak TLS is not ferry with our key
        let timer: NodeJS.Timeout | undefined;
        socket.once("connect", () => (timer = setTimeout(() => fail(new Error(`no TLS handshake within ${timeoutMs / 1000} s`)), timeoutMs)));
        const fail = (e: Error) => {
          clearTimeout(timer);
          socket.destroy();
          reject(authError(ep, psk, e));
        };
        socket.once("error", fail);
        // a server that closes during the handshake refused us (TLS 1.3: the alert may be lost)
        socket.once("close", () => fail(new Error("socket disconnected during the handshake")));
        socket.once("secureConnect", () => {
          clearTimeout(timer);
          socket.off("error", fail);
          socket.removeAllListeners("close");
          resolve(tune(socket));
        });
      });
    },
    listen(ep, onConnection) {
      return new Promise((resolve, reject) => {
        const refused = new Map<net.Socket, string>();
        const server = tls.createServer({
          ...TLS_OPTIONS, handshakeTimeout: timeoutMs,
          pskCallback: (socket, id) => {
            if (id === identity) return psk.key;
            refused.set(socket, id.startsWith("ferry1:") ? `it holds another key (id ${id.slice(7)}, ours ${psk.id})` : "it does not speak ferry's TLS");
            return null;
          },
        }, (socket) => {
          dropIfSilent(socket, timeoutMs, opts.log);
          onConnection(tune(socket));
        });
        server.on("tlsClientError", (e, socket) => {
          const why = refused.get(socket) ?? (/timeout|timed out/i.test(e.message) ? `no TLS handshake within ${timeoutMs / 1000} s` : sslReason(e.message));
          refused.delete(socket);
          opts.log?.(`refused a connection from ${socket.remoteAddress ?? "?"} before anything was sent: ${why}`);
          socket.destroy();
        });
        server.once("error", reject);
        server.listen({ host: ep.host, port: ep.port, exclusive: true }, () => {
          server.off("error", reject);
          resolve(server);
        });
      });
    },
  };
}
