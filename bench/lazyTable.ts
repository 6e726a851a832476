import { CRIU_LAZY, LAZY_TARGETS, type LazyReport, type LazySizeSummary } from "./lazy.js";

const ms = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(1)} ms`);
const us = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(2)} ms` : `${x.toFixed(0)} µs`);
const kb = (b: number) => `${(b / 1000).toFixed(1)} KB`;
const gbps = (g: number) => `${g.toFixed(2)} GB/s`;
const sizeLabel = (m: number) => (m % 1024 === 0 ? `${m / 1024} GiB` : `${m} MiB`);
const ok = (pass: boolean) => (pass ? " ✓" : " ✗");
const row = (cells: string[]) => `| ${cells.join(" | ")} |`;

/** The lazy scenario's table: every figure beside its target and the link measured in the same run. */
export function renderLazy(r: LazyReport, runs: number, cpus: string): string {
  const t = LAZY_TARGETS, l = r.link;
  const sizes = r.sizes;
  const out: string[] = [];
  out.push(`## ferry: lazy (post-copy) migration between two hosts (veth, MTU 1500, TLS)`);
  out.push("");
  out.push(`bench/victims/sweeper.c in host A, restored in host B while it keeps sweeping; ferry's processes started beforehand (Node's start-up not counted) and pinned to CPU ${cpus}, the victim too; medians of ${runs} run(s) per size.`);
  out.push("");
  const head = ["", ...sizes.map((s) => `ferry ${sizeLabel(s.sizeMiB)}`), "target", "limit in this run", "CRIU 4.2 ¹"];
  out.push(row(head));
  out.push(row(head.map(() => "---")));
  const line = (label: string, cell: (s: LazySizeSummary) => string, target: string, limit = "", criu = "") =>
    out.push(row([label, ...sizes.map(cell), target, limit, criu]));
  const downtimes = sizes.map((s) => s.downtimeMs);
  const spreadOk = Math.max(...downtimes) <= Math.min(...downtimes) * (1 + t.downtimeSpread);
  line("downtime: freeze at A → running at B ²", (s) => ms(s.downtimeMs) + ok(s.downtimeMs <= t.downtimeMs),
    `≤ ${t.downtimeMs} ms, sizes within ${t.downtimeSpread * 100}%${sizes.length > 1 ? ok(spreadOk) : ""}`, `link RTT ${us(l.tlsRttUs)} (TLS)`,
    `${CRIU_LAZY.downtime[256]} (256 MiB), ${CRIU_LAZY.downtime[1024]} (1 GiB)`);
  line("  of which the source's dump (frozen, images written)", (s) => ms(s.sourceDumpFrozenMs), "");
  line("  of which connect + handshake + restore at B", (s) => ms(s.destinationOpMs), "");
  line("bytes before the restore (images)", (s) => kb(s.bytesBeforeRestore) + ok(s.bytesBeforeRestore <= t.bytesBeforeRestore),
    `≤ ${kb(t.bytesBeforeRestore)} (200 MB process)`, "", CRIU_LAZY.bytesBeforeRestore);
  line("fault latency p50, during the background stream ³", (s) => us(s.faultP50Us) + ok(s.faultP50Us <= t.faultP50Us), `≤ ${t.faultP50Us} µs`,
    `RTT ${us(l.tlsRttUs)} TLS, ${us(l.tcpRttUs)} TCP`, CRIU_LAZY.fault);
  line("fault latency p99", (s) => us(s.faultP99Us) + ok(s.faultP99Us <= t.faultP99Us), `≤ ${t.faultP99Us} µs`);
  line("  faults served (median)", (s) => String(s.faults), "");
  line("all pages arrived, after the resume", (s) => ms(s.allPagesMs) + (s.sizeMiB === 1024 ? ok(s.allPagesMs <= t.allPages1GiBMs) : ""),
    `1 GiB ≤ ${ms(t.allPages1GiBMs)}`, "floor per size below ⁴", `1 GiB: ${CRIU_LAZY.allPages1GiB}`);
  line("  floor: the size at min(TLS, UFFDIO_COPY) ⁴", (s) => ms(s.allPagesFloorMs), "");
  line("  rate (MB/s)", (s) => `${s.mbPerS.toFixed(0)}`, "", `TLS ${gbps(l.tlsGBps)}, TCP ${gbps(l.tcpGBps)}`);
  line("  pages by fault / pushed", (s) => `${s.pagesByFault} / ${s.pagesPushed}`, "");
  line("destination (restore + daemon) peak RSS ⁵", (s) => `${s.daemonPeakRssMiB.toFixed(0)} MiB` + ok(s.daemonPeakRssMiB <= t.daemonRssMiB),
    `≤ ${t.daemonRssMiB} MiB`, "");
  line("  of which Node + modules before the work", (s) => `${s.daemonRssBeforeMiB.toFixed(0)} MiB`, "");
  line("source (dump + page server) peak RSS", (s) => `${s.sourcePeakRssMiB.toFixed(0)} MiB`, "");
  line("victim after the transfer (all pages checked)", (s) => s.verdict, "");
  out.push("");
  out.push(`Link and destination measured in this run (${(l.bytes / 2 ** 20).toFixed(0)} MiB per probe, best of 3, ferry's transports, same CPUs): ` +
    `TCP ${gbps(l.tcpGBps)}, TLS ${gbps(l.tlsGBps)} host A → B; round trip of 32 bytes (median) TCP ${us(l.tcpRttUs)}, TLS ${us(l.tlsRttUs)}; ` +
    `UFFDIO_COPY into fresh memory ${gbps(l.uffdCopyColdGBps)}.`);
  out.push("");
  out.push(`¹ ${CRIU_LAZY.source}.`);
  out.push("² From the freeze (the source's clock) to the process running at the destination (the same machine's clock): the dump of all but the lazy memory, the benchmark telling the destination, two TLS connections and the restore.");
  out.push("³ From the daemon's stats (src/lazy/stats.ts): first fault on a missing page until its UFFDIO_COPY; every such fault happens while the stream still runs (it ends when no page is missing).");
  out.push("⁴ The whole size at the slower of the link (TLS) and UFFDIO_COPY, as if the two overlapped perfectly: the stream cannot go under it.");
  out.push("⁵ getrusage maxrss of the destination's Node process (restore and lazy-pages daemon in one, as `ferry restore --lazy --page-server` runs).");
  return out.join("\n") + "\n";
}
