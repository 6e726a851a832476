import { PAGE_SIZE } from "../kernel/sys.js";

const round = (x: number | null, digits = 2) => (x === null ? null : Number(x.toFixed(digits)));

/** Latencies in microseconds, kept in a growable typed array (one number per fault). */
export class Latencies {
  private data = new Float64Array(1024);
  count = 0;

  add(us: number): void {
    if (this.count === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.count++] = us;
  }

  mean(): number | null {
    if (!this.count) return null;
    let sum = 0;
    for (let i = 0; i < this.count; i++) sum += this.data[i];
    return sum / this.count;
  }

  /** p50, p99 and mean, rounded to 0.1 µs (null when nothing was measured). */
  brief(): StageUs {
    return { p50: round(this.percentile(50), 1), p99: round(this.percentile(99), 1), mean: round(this.mean(), 1), count: this.count };
  }

  /** p in [0, 100]; nearest-rank. */
  percentile(p: number): number | null {
    if (!this.count) return null;
    const sorted = this.data.slice(0, this.count).sort();
    const rank = Math.min(this.count - 1, Math.max(0, Math.ceil((p / 100) * this.count) - 1));
    return sorted[rank];
  }
}

export interface StageUs {
  p50: number | null;
  p99: number | null;
  mean: number | null;
  count: number;
}

/**
 * Where a fault's time goes at the destination, stage by stage (µs), over every fault that asked
 * the source: the uffd became readable (libuv's poll callback) → its GET written on the fault
 * connection → the first reply frame decoded → UFFDIO_COPY returned (the thread woken). A reply
 * may say the page is already on its way in the stream (IN_FLIGHT): reply → copied then runs
 * until the stream brings it. The source's share of sentToReply is its own faultServiceUs
 * (SourceStats).
 */
export class FaultStages {
  readonly pollToSent = new Latencies();
  readonly sentToReply = new Latencies();
  readonly replyToCopied = new Latencies();
  /** PING → PONG on the fault connection while pages are still missing (the stream runs) */
  readonly pingRtt = new Latencies();
  /** one pushed frame at the destination: decoded → installed (JS work that can delay a fault) */
  readonly bulkFrame = new Latencies();

  summary(): FaultStagesSummary {
    return {
      pollToSent: this.pollToSent.brief(), sentToReply: this.sentToReply.brief(), replyToCopied: this.replyToCopied.brief(),
      pingRtt: this.pingRtt.brief(), bulkFrame: this.bulkFrame.brief(),
    };
  }
}
export type FaultStagesSummary = Record<"pollToSent" | "sentToReply" | "replyToCopied" | "pingRtt" | "bulkFrame", StageUs>;

/** What the destination counts while it fills a process. */
export class DaemonStats {
  readonly startedAt = performance.now();
  readonly cpuAtStart = process.cpuUsage();
  resumedAt = 0;
  allArrivedAt = 0;
  pagesTotal = 0;
  pagesInstalled = 0;
  pagesByFault = 0;
  pagesPushed = 0;
  zeroPages = 0;
  /** pages that arrived when no address space wanted them any more (already there, or dropped) */
  pagesUnneeded = 0;
  bytesReceived = 0;
  faults = 0;
  /** fault requests the source answered "on its way on the bulk connection" (no second copy sent) */
  faultsInFlight = 0;
  /** faults on pages that never were at the source, or were dropped: answered with zeros locally */
  localFaults = 0;
  readonly latency = new Latencies();
  readonly stages = new FaultStages();
  events = { fork: 0, remap: 0, remove: 0, unmap: 0 };
  droppedPages = 0;
  reconnects = 0;
}

export interface LazySummary {
  pid: number;
  outcome: "complete" | "process-exited" | "failed";
  error?: string;
  /** from the freeze at the source to the process running here (the clocks of both hosts) */
  downtimeMs: number | null;
  /** what had to reach the destination before the restore: the images */
  bytesBeforeRestore: number;
  pages: number;
  pagesByFault: number;
  pagesPushed: number;
  zeroPages: number;
  pagesUnneeded: number;
  bytesReceived: number;
  faults: number;
  faultsInFlight: number;
  localFaults: number;
  faultLatencyUs: { p50: number | null; p99: number | null; max: number | null; count: number };
  /** the fault path stage by stage (FaultStages) */
  faultStagesUs: FaultStagesSummary;
  /** from the resume here until the last page arrived */
  allPagesMs: number | null;
  mbPerS: number | null;
  events: DaemonStats["events"];
  droppedPages: number;
  reconnects: number;
  linkRttMs: number;
  /** CPU time this process spent (user + system) while it served the process */
  cpuMs: number;
}

export function cpuMsSince(start: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(start);
  return Math.round((u.user + u.system) / 1000);
}


export function summarize(s: DaemonStats, pid: number, o: { outcome: LazySummary["outcome"]; error?: string; frozenAtUs?: number; resumedAtUs?: number; imageBytes: number; rttMs: number }): LazySummary {
  const allPagesMs = s.allArrivedAt && s.resumedAt ? s.allArrivedAt - s.resumedAt : null;
  const secs = allPagesMs !== null ? allPagesMs / 1000 : (performance.now() - (s.resumedAt || s.startedAt)) / 1000;
  const out: LazySummary = {
    pid,
    outcome: o.outcome,
    downtimeMs: o.frozenAtUs && o.resumedAtUs ? round((o.resumedAtUs - o.frozenAtUs) / 1000) : null,
    bytesBeforeRestore: o.imageBytes,
    pages: s.pagesTotal,
    pagesByFault: s.pagesByFault,
    pagesPushed: s.pagesPushed,
    zeroPages: s.zeroPages,
    pagesUnneeded: s.pagesUnneeded,
    bytesReceived: s.bytesReceived,
    faults: s.faults,
    faultsInFlight: s.faultsInFlight,
    localFaults: s.localFaults,
    faultLatencyUs: {
      p50: round(s.latency.percentile(50), 1), p99: round(s.latency.percentile(99), 1),
      max: round(s.latency.percentile(100), 1), count: s.latency.count,
    },
    faultStagesUs: s.stages.summary(),
    allPagesMs: round(allPagesMs),
    mbPerS: secs > 0 ? round((s.pagesInstalled * PAGE_SIZE) / 1e6 / secs, 1) : null,
    events: s.events,
    droppedPages: s.droppedPages,
    reconnects: s.reconnects,
    linkRttMs: round(o.rttMs, 3) ?? 0,
    cpuMs: cpuMsSince(s.cpuAtStart),
  };
  if (o.error) out.error = o.error;
  return out;
}

/** A one-line progress display on a TTY (stderr), redrawn at most 5 times a second. */
export class ProgressLine {
  private last = 0;
  private shown = false;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {}

  get enabled(): boolean {
    return !!this.out.isTTY;
  }

  update(text: () => string, force = false): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (!force && now - this.last < 200) return;
    this.last = now;
    this.out.write(`\r\x1b[K${text()}`);
    this.shown = true;
  }

  /** A logger whose lines go above the progress line: `${who}: ${line}`. */
  logger(who: string): (line: string) => void {
    return (line) => {
      this.clear();
      this.out.write(`${who}: ${line}\n`);
    };
  }

  clear(): void {
    if (this.shown) this.out.write("\r\x1b[K");
    this.shown = false;
  }
}

export function mib(bytes: number): string {
  return (bytes / (1 << 20)).toFixed(1);
}
