import type { MigrateSummary } from "./summary.js";
import type { Timeline } from "./timeline.js";

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
const W = 900, LANE = 34, LEFT = 110;
/** the downtime figure: a row per step, its name on the left, its ms on the right */
const ROW = 18, NAME_W = 330, MS_W = 70;

/**
 * One self-contained HTML page: the timeline of a migration drawn as inline SVG (phases,
 * rounds, switch-over and downtime, bytes and faults over time), the downtime's steps on both
 * hosts on a zoomed axis of their own, the settings and the summary.
 */
export function writeReport(s: MigrateSummary, tl: Timeline, settings: Record<string, unknown>): string {
  const end = Math.max(tl.now(), 1);
  const x = (t: number) => LEFT + (Math.max(0, t) / end) * (W - LEFT - 20);
  const svg: string[] = [];
  const lane = (i: number, label: string) => {
    svg.push(`<text x="4" y="${30 + i * LANE + 16}" class="l">${esc(label)}</text>`);
    return 30 + i * LANE;
  };
  // axis
  for (let k = 0; k <= 10; k++) {
    const t = (end * k) / 10;
    svg.push(`<line x1="${x(t)}" y1="22" x2="${x(t)}" y2="${30 + 5 * LANE}" class="grid"/><text x="${x(t)}" y="16" class="ax">${t.toFixed(0)} ms</text>`);
  }
  // phases
  let y = lane(0, "phase");
  tl.phases.forEach((p, i) => {
    const until = tl.phases[i + 1]?.t ?? end;
    svg.push(`<rect x="${x(p.t)}" y="${y}" width="${Math.max(1, x(until) - x(p.t))}" height="24" class="ph ${p.phase}"><title>${p.phase}: ${p.t.toFixed(1)}–${until.toFixed(1)} ms</title></rect>`);
    if (x(until) - x(p.t) > 40) svg.push(`<text x="${x(p.t) + 3}" y="${y + 16}" class="in">${p.phase}</text>`);
  });
  // rounds
  y = lane(1, "rounds");
  for (const r of tl.rounds) {
    svg.push(`<rect x="${x(r.startMs)}" y="${y}" width="${Math.max(2, x(r.endMs) - x(r.startMs))}" height="24" class="round"><title>round ${r.round + 1}: ${r.pages} pages, ${(r.bytes / 1e6).toFixed(2)} MB, dirty ${Math.round(r.dirtyRate)} pages/s, predicted downtime ${r.predictedDowntimeMs.toFixed(1)} ms</title></rect>`);
    svg.push(`<text x="${x(r.startMs) + 2}" y="${y + 16}" class="in">${r.round + 1}</text>`);
  }
  // downtime: from the freeze to the resume at the destination
  y = lane(2, "downtime");
  if (tl.freezeMs !== null && tl.resumeMs !== null) {
    svg.push(`<rect x="${x(tl.freezeMs)}" y="${y}" width="${Math.max(2, x(tl.resumeMs) - x(tl.freezeMs))}" height="24" class="down"><title>downtime ${s.downtimeMs} ms</title></rect>`);
    svg.push(`<line x1="${x(tl.freezeMs)}" y1="22" x2="${x(tl.freezeMs)}" y2="${30 + 5 * LANE}" class="switch"/><text x="${x(tl.freezeMs) + 3}" y="${y + 16}" class="in">switch-over, ${s.downtimeMs} ms down</text>`);
  }
  svg.push(curve(tl, lane(3, "bytes sent"), x, (p) => p.bytesSent, "bytes"));
  svg.push(curve(tl, lane(4, "faults"), x, (p) => p.faults, "faults"));
  const rows = flatten(s).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(String(v))}</td></tr>`).join("");
  const set = Object.entries(settings).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(String(v))}</td></tr>`).join("");
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>ferry migrate ${s.pid} (${s.mode})</title><style>
body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}td{padding:2px 10px;border-bottom:1px solid #eee}
.l{font-size:12px}.ax{font-size:10px;text-anchor:middle;fill:#666}.grid{stroke:#eee}.in{font-size:11px;fill:#fff}
.ph{fill:#888}.ph.precopy{fill:#3a7}.ph.dump,.ph.images,.ph.restore{fill:#d63}.ph.lazy{fill:#37c}.ph.done{fill:#555}.ph.failed{fill:#c00}
.step.source{fill:#84b}.step.destination{fill:#1aa}.ms{font-size:11px;text-anchor:end}
.round{fill:#3a7;stroke:#fff}.down{fill:#d33}.switch{stroke:#d33;stroke-dasharray:4 3}.bytes{fill:none;stroke:#37c;stroke-width:2}.faults{fill:none;stroke:#c70;stroke-width:2}
</style></head><body>
<h1>ferry migrate: process ${s.pid}, ${esc(s.mode)}</h1>
<p>downtime <b>${s.downtimeMs} ms</b>, total ${s.totalMs} ms, ${(s.bytesSent / 1e6).toFixed(2)} MB sent, ${s.rounds.length} pre-copy rounds, ${s.faults} faults, ${s.compression.used ? `compression on (${esc(s.compression.codec ?? "")}, ${s.compression.ratio} of the size)` : "compression off"}</p>
<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${40 + 5 * LANE}" viewBox="0 0 ${W} ${40 + 5 * LANE}">${svg.join("")}</svg>
<h2>Where the downtime went</h2>
${downtimeFigure(s)}
<h2>Settings</h2><table>${set}</table>
<h2>Summary</h2><table>${rows}</table>
</body></html>
`;
}

/**
 * The switch-over zoomed in: each step on either host as a bar on the downtime's own axis (ms
 * from the freeze; the seize began before it), so that a slow downtime shows which step made it.
 */
function downtimeFigure(s: MigrateSummary): string {
  const steps = s.downtimeSteps;
  if (!steps.length) return "<p>no steps were recorded</p>";
  const from = Math.min(0, ...steps.map((st) => st.at));
  const to = Math.max(s.downtimeMs, ...steps.map((st) => st.at + st.ms), from + 1);
  const x = (t: number) => NAME_W + ((t - from) / (to - from)) * (W - NAME_W - MS_W - 10);
  const top = 24, bottom = top + steps.length * ROW + 4, h = bottom + 18;
  const svg: string[] = [];
  const step = tickStep((to - from) / 8);
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
    svg.push(`<line x1="${x(t)}" y1="${top - 4}" x2="${x(t)}" y2="${bottom}" class="grid"/><text x="${x(t)}" y="12" class="ax">${Number(t.toFixed(3))} ms</text>`);
  }
  for (const [t, what] of [[0, "freeze"], [s.downtimeMs, "resume"]] as const) {
    svg.push(`<line x1="${x(t)}" y1="${top - 4}" x2="${x(t)}" y2="${bottom}" class="switch"><title>${what} (${t} ms)</title></line><text x="${x(t)}" y="${bottom + 13}" class="ax">${what}</text>`);
  }
  steps.forEach((st, i) => {
    const y = top + i * ROW;
    const what = `${st.where}: ${st.name}`;
    svg.push(`<text x="4" y="${y + 12}" class="l">${esc(what)}</text>`);
    svg.push(`<rect x="${x(st.at)}" y="${y + 2}" width="${Math.max(2, x(st.at + st.ms) - x(st.at))}" height="${ROW - 4}" class="step ${st.where}"><title>${esc(what)}: ${st.ms} ms, from ${st.at} ms</title></rect>`);
    svg.push(`<text x="${W - 4}" y="${y + 12}" class="ms">${st.ms.toFixed(2)} ms</text>`);
  });
  return `<svg id="downtime" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}">${svg.join("")}</svg>`;
}

/** A round step for an axis: 1, 2 or 5 times a power of ten, at least `min`. */
function tickStep(min: number): number {
  const p = 10 ** Math.floor(Math.log10(min));
  return [1, 2, 5, 10].map((k) => k * p).find((v) => v >= min)!;
}

function curve(tl: Timeline, y: number, x: (t: number) => number, v: (p: Timeline["samples"][number]) => number, cls: string): string {
  const pts = tl.samples;
  const max = Math.max(1, ...pts.map(v));
  if (!pts.length) return "";
  const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${(y + 26 - (v(p) / max) * 26).toFixed(1)}`).join("");
  return `<path d="${d}" class="${cls}"><title>max ${max}</title></path><text x="${x(pts.at(-1)!.t) - 4}" y="${y + 8}" class="ax">${max}</text>`;
}

function flatten(o: unknown, prefix = ""): [string, unknown][] {
  if (o === null || typeof o !== "object") return [[prefix, o]];
  if (Array.isArray(o)) return [[prefix, o.length ? JSON.stringify(o) : "none"]];
  return Object.entries(o as Record<string, unknown>).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
}
