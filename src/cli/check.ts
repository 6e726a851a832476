import { Command } from "commander";
import { probeFeatures, missingRequired, type Feature } from "../kernel/features.js";

export function registerCheck(program: Command): void {
  program
    .command("check")
    .description("try every kernel feature ferry relies on and say what works here")
    .option("--json", "print the results as JSON")
    .action(async (o: { json?: boolean }) => {
      const features = await probeFeatures();
      const missing = missingRequired(features);
      if (o.json) {
        process.stdout.write(JSON.stringify({ ok: missing.length === 0, features }, null, 2) + "\n");
      } else {
        process.stdout.write(formatTable(features, process.stdout.isTTY ? process.stdout.columns : undefined));
        process.stdout.write(
          missing.length === 0
            ? "\nferry has everything it needs on this machine.\n"
            : `\nMISSING: ${missing.map((f) => f.name).join(", ")} — see the impact column for what will not work.\n`,
        );
      }
      if (missing.length) process.exitCode = 1;
    });
}

/** "ok", "MISSING" for a required feature that is not there, "absent" for an optional one. */
export function statusOf(f: Feature): string {
  if (f.ok) return "ok";
  return f.required ? "MISSING" : "absent";
}

/**
 * An aligned table: feature, status, detail, impact. Given a terminal width, detail and impact
 * are wrapped inside their columns; without one (a pipe, a file) every feature stays on one line.
 */
export function formatTable(features: Feature[], width?: number): string {
  const head = { name: "FEATURE", status: "STATUS", detail: "DETAIL", impact: "IMPACT" };
  const rows = [head, ...features.map((f) => ({ name: f.name, status: statusOf(f), detail: f.detail, impact: f.impact }))];
  const w1 = Math.max(...rows.map((r) => r.name.length));
  const w2 = Math.max(...rows.map((r) => r.status.length));
  const gap = "  ";
  let w3 = Math.max(...rows.map((r) => r.detail.length));
  let w4 = Infinity;
  if (width) {
    const room = Math.max(40, width - w1 - w2 - 3 * gap.length);
    w3 = Math.min(w3, Math.floor(room * 0.55));
    w4 = room - w3;
  }
  const out: string[] = [];
  for (const r of rows) {
    const d = wrap(r.detail, w3);
    const i = wrap(r.impact, w4);
    for (let k = 0; k < Math.max(d.length, i.length); k++) {
      const cells = k === 0 ? [r.name.padEnd(w1), r.status.padEnd(w2)] : ["".padEnd(w1), "".padEnd(w2)];
      out.push([...cells, (d[k] ?? "").padEnd(w3), i[k] ?? ""].join(gap).trimEnd());
    }
  }
  return out.join("\n") + "\n";
}

function wrap(text: string, width: number): string[] {
  if (text.length <= width) return [text];
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}
