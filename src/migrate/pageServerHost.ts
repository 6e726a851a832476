import type net from "node:net";
import { FrozenProcess } from "../lazy/frozen.js";
import { PageIndex } from "../lazy/pageIndex.js";
import { PageServer } from "../lazy/pageServer.js";
import type { PageRange } from "../lazy/protocol.js";
import type { Transport } from "../net/transport.js";

/**
 * The lazy page server of a migration, on a port the kernel picks (the agent learns it over the
 * control connection). It listens before the freeze, so the port is known at once; connections
 * that arrive before the page server exists wait in a queue. Once the dump has left the source
 * stopped, `serve()` holds it and serves its lazy pages: the migration sends RESTORE first and
 * does this while the agent gets ready, off the downtime.
 */
export class PageServerHost {
  private queued: net.Socket[] = [];
  private onConnection: ((s: net.Socket) => void) | null = null;
  private served = false;

  private constructor(private readonly server: net.Server, private readonly transportName: string) {}

  static async listen(host: string, transport: Transport): Promise<PageServerHost> {
    let self: PageServerHost | null = null;
    const early: net.Socket[] = [];
    const server = await transport.listen({ host, port: 0 }, (s) => {
      if (self) self.accept(s);
      else early.push(s);
    });
    self = new PageServerHost(server, transport.name);
    self.queued.push(...early);
    return self;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  private accept(s: net.Socket): void {
    if (this.onConnection) this.onConnection(s);
    else this.queued.push(s);
  }

  /** Hold the stopped source and serve `lazyRuns` of its memory (the page server owns the listener from now on). */
  async serve(pid: number, lazyRuns: PageRange[], retryForMs: number, log?: (l: string) => void): Promise<PageServer> {
    const frozen = await FrozenProcess.hold(pid);
    try {
      const listening: Transport = {
        name: this.transportName,
        connect: () => Promise.reject(new Error("a page server does not connect")),
        listen: async (_ep, on) => {
          this.onConnection = on;
          for (const s of this.queued.splice(0)) on(s);
          return this.server;
        },
      };
      const server = new PageServer({ process: frozen, index: new PageIndex(lazyRuns), listen: { host: "", port: this.port }, transport: listening, retryForMs, log });
      await server.start();
      this.served = true;
      return server;
    } catch (e) {
      frozen.release();
      throw e;
    }
  }

  /** Never served (the migration failed before): stop listening. */
  close(): void {
    if (this.served) return;
    for (const s of this.queued.splice(0)) s.destroy();
    this.server.close();
  }
}
