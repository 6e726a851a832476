import type net from "node:net";
import { FrozenProcess } from "../lazy/frozen.js";
import { loadLazyImages } from "../lazy/images.js";
import { PageServer } from "../lazy/pageServer.js";
import type { Transport } from "../net/transport.js";

/**
 * The lazy page server of a migration, on a port the kernel picks (the agent learns it over the
 * control connection): the source process, left stopped by a lazy dump, is served from `images`.
 */
export async function startPageServer(pid: number, images: string, host: string, transport: Transport, retryForMs: number, log?: (l: string) => void): Promise<{ server: PageServer; port: number }> {
  const got: { server?: net.Server } = {};
  const capture: Transport = {
    name: transport.name,
    connect: (ep) => transport.connect(ep),
    listen: async (ep, on) => (got.server = await transport.listen(ep, on)),
  };
  const frozen = await FrozenProcess.hold(pid);
  try {
    const { index } = loadLazyImages(images);
    const server = new PageServer({ process: frozen, index, listen: { host, port: 0 }, transport: capture, retryForMs, log });
    await server.start();
    const port = (got.server!.address() as net.AddressInfo).port;
    return { server, port };
  } catch (e) {
    frozen.release();
    throw e;
  }
}
