import { ProgressLine, mib } from "../lazy/stats.js";
import type { Timeline } from "./timeline.js";

/** The live line of `ferry migrate` on a TTY: phase, round, dirty rate, bytes, ETA, faults. */
export class MigrateProgress {
  private readonly line: ProgressLine;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly tl: Timeline, out: NodeJS.WriteStream = process.stderr) {
    this.line = new ProgressLine(out);
  }

  get enabled(): boolean {
    return this.line.enabled;
  }

  start(): void {
    if (!this.enabled) return;
    this.timer = setInterval(() => this.line.update(() => this.text()), 100);
    this.timer.unref();
  }

  text(): string {
    const tl = this.tl;
    const parts = [`ferry migrate: ${tl.current}`];
    const r = tl.rounds.at(-1);
    if (r) {
      parts.push(`round ${r.round + 1}`, `dirty ${mib(r.dirtyRate * 4096)} MiB/s`);
      // the next round sends about what the last one found dirty
      if (tl.current === "precopy" && r.bandwidth > 0) parts.push(`ETA ${((r.pages * 4096) / r.bandwidth).toFixed(1)} s`);
    }
    const s = tl.samples.at(-1);
    const sent = Math.max(s?.bytesSent ?? 0, tl.rounds.reduce((n, x) => n + x.bytes, 0));
    parts.push(`${mib(sent)} MiB sent`);
    if (s?.faults) parts.push(`${s.faults} faults served`);
    return parts.join(", ");
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.line.clear();
  }
}
