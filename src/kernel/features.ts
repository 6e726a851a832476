import { processProbes } from "./probes/process.js";
import { memoryProbes } from "./probes/memory.js";
import { systemProbes } from "./probes/system.js";
import { errText, type Probe } from "./probes/probe.js";

export { vdsoIdentity } from "./vdso.js";

/** One line of `ferry check`: a kernel feature ferry relies on, tried for real on this machine. */
export interface Feature {
  name: string;
  ok: boolean;
  /** false for informational and identity lines: they never make `ferry check` fail. */
  required: boolean;
  /** What the probe did and saw. */
  detail: string;
  /** What this means for the user: what works, or what will not. */
  impact: string;
  /** The identity lines' value (kernel release, vDSO hash), for tools reading the JSON. */
  value?: string;
}

/** Every probe, in the order `ferry check` prints them. */
export function allProbes(): Probe[] {
  return [...processProbes, ...memoryProbes, ...systemProbes];
}

/**
 * Run every probe. Each really exercises its feature (a traced child, a uffd, a TCP connection
 * ...) and releases what it made, children and fds, whatever happens. A probe that throws is
 * reported as missing with the error as its detail; one probe failing never stops the others.
 */
export async function probeFeatures(probes: Probe[] = allProbes()): Promise<Feature[]> {
  const out: Feature[] = [];
  for (const p of probes) {
    let ok = false;
    let detail: string;
    let value: string | undefined;
    try {
      const r = await p.run();
      ok = r.ok;
      detail = r.detail;
      value = r.value;
    } catch (e) {
      detail = errText(e);
    }
    const f: Feature = { name: p.name, ok, required: p.required, detail, impact: ok ? p.enables : p.without };
    if (value !== undefined) f.value = value;
    out.push(f);
  }
  return out;
}

/** The required features that are missing (empty: ferry has all it needs). */
export function missingRequired(features: Feature[]): Feature[] {
  return features.filter((f) => f.required && !f.ok);
}
