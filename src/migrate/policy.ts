import { PAGE_SIZE } from "../kernel/sys.js";

/** What stopping costs besides sending memory: the dump, the images and the restore (ms). */
export const SWITCH_COST_MS = 15;

export interface RoundFacts {
  /** pages the next round would send (written since the last one) */
  dirtyPages: number;
  /** pages the last round sent */
  lastPages: number;
  /** measured link bandwidth, bytes/s */
  bandwidth: number;
  round: number;
}

/** The downtime of stopping now: the switch-over plus sending what is dirty at link speed. */
export function predictDowntimeMs(dirtyPages: number, bandwidth: number): number {
  return SWITCH_COST_MS + (dirtyPages * PAGE_SIZE * 1000) / Math.max(bandwidth, 1);
}

/**
 * Is another round worth it? Not when stopping now fits the budget, when the dirty set no
 * longer shrinks (the process writes as fast as the link carries: more rounds only resend its
 * hot set, P.Haul's 10% rule), when it is tiny, or after the last round allowed.
 */
export function anotherRound(f: RoundFacts, maxDowntimeMs: number, maxRounds: number): { go: boolean; why: string } {
  if (f.round >= maxRounds) return { go: false, why: `${maxRounds} rounds` };
  if (f.dirtyPages < 64) return { go: false, why: "dirty set under 64 pages" };
  if (predictDowntimeMs(f.dirtyPages, f.bandwidth) <= maxDowntimeMs) return { go: false, why: "predicted downtime fits the budget" };
  if (f.round > 1 && f.dirtyPages > f.lastPages * 0.9) return { go: false, why: "dirty set stopped shrinking" };
  return { go: true, why: "" };
}
