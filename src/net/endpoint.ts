import { FerryError } from "../errors.js";

/** Where a page server listens or a client connects: "127.100.0.1:7070", "[::1]:7070", ":7070". */
export interface Endpoint {
  host: string;
  port: number;
}

export function parseEndpoint(text: string, what = "address"): Endpoint {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new FerryError("FERRY_USAGE", `${what} ${JSON.stringify(text)} is not ADDR:PORT (e.g. 127.100.0.1:7070 or [::1]:7070)`);
  }
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

export function formatEndpoint(ep: Endpoint): string {
  return ep.host.includes(":") ? `[${ep.host}]:${ep.port}` : `${ep.host}:${ep.port}`;
}
