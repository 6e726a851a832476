/**
 * Where an operation spends its time: named steps with their start (ms from the recorder's
 * origin) and duration, in the order they began. dump() and restore() record theirs and return
 * them; `ferry migrate --json` lays the source's and the agent's steps of the switch-over side by
 * side (its `downtimeSteps`), so that a slow downtime says which step made it slow.
 */
export interface Step {
  /** what ran: "seize", "registers", "mmap VMAs", "send images"... */
  name: string;
  /** when it began, ms from the origin */
  at: number;
  ms: number;
}

export class Spans {
  readonly steps: Step[] = [];

  /** `origin`: a performance.now() value that `at` counts from (default: now) */
  constructor(readonly origin = performance.now()) {}

  /** Run `fn`, recording how long it took (also when it throws). */
  time<T>(name: string, fn: () => T): T {
    const t = performance.now();
    try {
      return fn();
    } finally {
      this.record(name, t);
    }
  }

  async timeAsync<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t = performance.now();
    try {
      return await fn();
    } finally {
      this.record(name, t);
    }
  }

  /** A step that began at `since` (performance.now()) and ends now. */
  record(name: string, since: number): void {
    this.steps.push({ name, at: since - this.origin, ms: performance.now() - since });
  }

  /** Steps of another recorder (a nested operation), moved onto this one's origin. */
  adopt(steps: Step[], otherOrigin: number, prefix = ""): void {
    for (const s of steps) this.steps.push({ name: prefix + s.name, at: s.at + otherOrigin - this.origin, ms: s.ms });
  }
}

/** Steps rounded to 0.01 ms, for summaries. */
export function roundSteps(steps: Step[]): Step[] {
  return steps.map((s) => ({ name: s.name, at: Number(s.at.toFixed(2)), ms: Number(s.ms.toFixed(2)) }));
}
