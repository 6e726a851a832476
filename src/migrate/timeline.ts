import type { Step } from "../spans.js";

/** A step of the switch-over, on the source or at the destination (`at`: ms from the start). */
export interface SwitchStep extends Step {
  where: "source" | "destination";
}

/**
 * What happened during one migration, in order, with times (ms from its start): the data the
 * progress line, the JSON summary and the HTML report are drawn from.
 */
export type Phase = "connect" | "precopy" | "freeze" | "dump" | "switch-over" | "images" | "restore" | "install" | "lazy" | "done" | "failed";

export interface RoundRecord {
  round: number;
  startMs: number;
  endMs: number;
  pages: number;
  bytes: number;
  /** pages written per second while the round was sent */
  dirtyRate: number;
  /** link bandwidth measured on this round, bytes/s */
  bandwidth: number;
  /** the downtime predicted if the process were stopped after this round, ms */
  predictedDowntimeMs: number;
}

export interface Sample {
  t: number;
  bytesSent: number;
  faults: number;
  pagesArrived: number;
}

export class Timeline {
  readonly t0 = performance.now();
  readonly phases: { phase: Phase; t: number }[] = [];
  readonly rounds: RoundRecord[] = [];
  readonly samples: Sample[] = [];
  freezeMs: number | null = null;
  resumeMs: number | null = null;
  /** told of each phase as it begins (`ferry migrate --phase-fd`) */
  onPhase: ((p: Phase) => void) | null = null;
  /** the steps from the freeze to the resume, both sides */
  switchSteps: SwitchStep[] = [];

  now(): number {
    return performance.now() - this.t0;
  }

  phase(p: Phase): void {
    this.phases.push({ phase: p, t: this.now() });
    this.onPhase?.(p);
  }

  get current(): Phase {
    return this.phases.at(-1)?.phase ?? "connect";
  }

  sample(s: Omit<Sample, "t">): void {
    const last = this.samples.at(-1);
    const t = this.now();
    if (last && t - last.t < 20 && s.faults === last.faults && s.bytesSent === last.bytesSent) return;
    this.samples.push({ t, ...s });
  }
}
