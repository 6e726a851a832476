import fs from "node:fs";
import path from "node:path";

/** Node flags that write a CPU profile of the process to DIR/NAME.cpuprofile (NAME made file-safe). */
export function cpuProfFlags(dir: string, name: string): string[] {
  return ["--cpu-prof", "--cpu-prof-interval=250", `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name.replace(/[^\w.-]+/g, "-")}.cpuprofile`];
}

/** The parts of a V8 .cpuprofile (node --cpu-prof) that a summary needs. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  fn: string;
  ms: number;
  share: number;
}

export interface OperationProfile {
  /** time sampled inside the operation's function */
  totalMs: number;
  /** self time per function (native calls such as writeBuffer or crc32 are their own functions) */
  self: HotSpot[];
  /** inclusive time of ferry's own functions (dist/src), the operation itself excluded */
  inclusive: HotSpot[];
}

/**
 * Where the time of one operation went: only samples under the function `op` (e.g. "dump" in
 * dump/index.js) count, so Node's start-up and module loading stay out of the picture.
 */
export function profileOperation(file: string, op: { fn: string; file: string }, top = 12): OperationProfile {
  const prof = JSON.parse(fs.readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (id: number) => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    return `${functionName || "(anonymous)"}${url ? ` ${path.basename(url)}:${lineNumber + 1}` : ""}`;
  };
  const isOp = (id: number) => {
    const f = byId.get(id)!.callFrame;
    return f.functionName === op.fn && f.url.endsWith(op.file);
  };

  const isFerry = (id: number) => byId.get(id)!.callFrame.url.includes("/dist/src/");
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let totalUs = 0;
  prof.samples.forEach((id, i) => {
    // The sample's stack up to the operation; samples outside it do not count.
    const stack: number[] = [];
    let cur: number | undefined = id;
    while (cur !== undefined && !isOp(cur)) {
      stack.push(cur);
      cur = parent.get(cur);
    }
    if (cur === undefined) return;
    const us = prof.timeDeltas[i] ?? 0;
    totalUs += us;
    const selfName = stack.length ? label(id) : `${op.fn} (own code)`;
    self.set(selfName, (self.get(selfName) ?? 0) + us);
    for (const name of new Set(stack.filter(isFerry).map(label))) inclusive.set(name, (inclusive.get(name) ?? 0) + us);
  });
  const rank = (m: Map<string, number>) => [...m.entries()]
    .map(([fn, us]) => ({ fn, ms: us / 1000, share: totalUs ? us / totalUs : 0 }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, top);
  return { totalMs: totalUs / 1000, self: rank(self), inclusive: rank(inclusive) };
}

export function renderProfile(title: string, file: string, op: { fn: string; file: string }): string {
  const p = profileOperation(file, op);
  const table = (head: string, spots: HotSpot[]) => [
    `| ${head} | time | share |`, "| --- | --- | --- |",
    ...spots.map((s) => `| ${s.fn.replace(/\|/g, "\\|")} | ${s.ms.toFixed(1)} ms | ${(s.share * 100).toFixed(1)} % |`),
  ];
  return [
    `### ${title}: ${p.totalMs.toFixed(0)} ms sampled inside ${op.fn}() (${path.basename(file)})`, "",
    ...table("ferry function, inclusive time", p.inclusive), "",
    ...table("function, self time", p.self), "",
  ].join("\n");
}
