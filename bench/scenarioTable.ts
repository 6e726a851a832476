import type { TcpReport, TreeReport } from "./scenarios.js";
import type { MigrateModeSummary, MigrateReport } from "./migrate.js";

const sec = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
const ms = (v: number) => `${v.toFixed(v < 1 ? 3 : 1)} ms`;
const mib = (m: number) => `${m.toFixed(0)} MiB`;
const times = (x: number) => `× ${x.toFixed(2)}`;
const row = (cells: string[]) => `| ${cells.join(" | ")} |`;

/** The process tree beside one process of the same memory, measured in alternation in the same run. */
export function renderTree(t: TreeReport, runs: number): string {
  const { shape } = t;
  const head = ["", `tree: ${shape.processes} processes × ${shape.threadsPerProcess} threads × ${shape.mibPerProcess} MiB`, `single process, ${shape.totalMiB} MiB`, "tree ÷ single"];
  const line = (label: string, cell: (s: TreeReport["tree"]) => string, ratio = "") => row([label, cell(t.tree), cell(t.single), ratio]);
  const injected = (s: TreeReport["tree"]) => `${s.runs[0].dump.injectedSyscalls} / ${s.runs[0].restore.injectedSyscalls}`;
  const children = shape.processes - 1;
  return [
    `## ferry: a process tree against one process of the same memory (${shape.totalMiB} MiB)`,
    "",
    `Medians of ${runs} run(s) each, the single process and the tree in alternation, pinned to the same CPU as above. ` +
      `Tree victim: bench/victims/treesweeper.c (the root forks ${children} ${children === 1 ? "child" : "children"}; in every process ${shape.threadsPerProcess} threads sweep their own slice of its ${shape.mibPerProcess} MiB; ` +
      "after the restore each process checks every page, its threads' TIDs and its parent). Single: bench/victims/sweeper.c.",
    "",
    row(head),
    row(head.map(() => "---")),
    line("dump (dump() call), median (best)", (s) => `${sec(s.dumpMs)} (${sec(s.dumpBestMs)})`, times(t.ratio.dump)),
    line("  of which frozen", (s) => sec(s.dumpFrozenMs), times(t.ratio.dumpFrozen)),
    line("  before the freeze: seizing, the victim's threads still running on the CPU ¹", (s) => sec(s.dumpMs - s.dumpFrozenMs)),
    line("  floor: process_vm_readv + /dev/shm write", (s) => sec(s.dumpFloorMs)),
    line("  dump, whole command (Node start-up incl.)", (s) => sec(s.dumpCommandMs)),
    line("restore (restore() call, until all of it runs), median (best)", (s) => `${sec(s.restoreMs)} (${sec(s.restoreBestMs)})`, times(t.ratio.restore)),
    line("  floor: /dev/shm read + process_vm_writev into fresh memory", (s) => sec(s.restoreFloorMs)),
    line("  restore, whole command (Node start-up incl.)", (s) => sec(s.restoreCommandMs)),
    line("downtime = dump frozen + restore", (s) => sec(s.downtimeMs), times(t.ratio.downtime)),
    row(["  the root's, restore starting at once: up to the whole dump() call + restore ³", sec(t.rootDowntimeMs.tree), sec(t.rootDowntimeMs.single), times(t.ratio.rootDowntime)]),
    line("  freeze → running, end to end here", (s) => sec(s.downtimeEndToEndMs)),
    line("ferry CPU time ÷ wall time, dump / restore ²", (s) => `${s.dumpCpuShare.toFixed(2)} / ${s.restoreCpuShare.toFixed(2)}`),
    line("ferry peak RSS, dump / restore", (s) => `${mib(s.dumpPeakRssMiB)} / ${mib(s.restorePeakRssMiB)}`),
    line("image size", (s) => `${(s.imageBytes / 2 ** 20).toFixed(1)} MiB`),
    line("injected system calls, dump / restore (first run)", injected),
    line("victim after restore", (s) => s.verdict),
    "",
    `¹ Medians, so dump − frozen is approximate. Until every thread is stopped, ferry shares its CPU with ${shape.processes * shape.threadsPerProcess} sweeping threads ` +
      "(the single process has one): each stop it waits for costs it a turn behind all of them. The dump command's Node start-up pays the same way.",
    "² Below ~0.9 the operation's process waited: for the CPU (the victim's threads, other work on this machine) or for the process it works on.",
    "³ ferry freezes the tree one thread, then one process, after another, root first (src/dump/tree.ts, seize.ts); \"frozen\" counts from the last one. " +
      "The root stops at the start of the dump() call, so its downtime lies between the two downtime rows.",
    "",
  ].join("\n");
}

/** TCP repair: the victim with its connections beside the same victim with its listener only. */
export function renderTcp(t: TcpReport, runs: number): string {
  const p = t.perConnectionMs;
  const head = ["", `${t.connections} connections (${t.sockets} sockets)`, "listener only", "per connection: whole ÷ N", "per connection: added ¹"];
  const line = (label: string, pick: (s: TcpReport["loaded"]) => number, per?: number, added?: number) =>
    row([label, sec(pick(t.loaded)), sec(pick(t.baseline)), per === undefined ? "" : ms(per), added === undefined ? "" : ms(added)]);
  return [
    `## ferry: TCP repair of ${t.connections} established connections`,
    "",
    `Medians of ${runs} run(s) each, in alternation, pinned to the same CPU as above. Victim: bench/victims/tcpconns.c — ${t.connections} loopback connections to its own ` +
      `listener, both ends in the one process, ${t.queuedConnections} of them with a few bytes queued; after the restore it checks every connection's addresses and queued bytes, ` +
      "sends a message both ways on every one, and connects once more to the listener.",
    "",
    row(head),
    row(head.map(() => "---")),
    line("dump (dump() call)", (s) => s.dumpMs, p.dump, p.dumpAdded),
    line("  of which frozen", (s) => s.dumpFrozenMs, p.dumpFrozen, p.dumpFrozenAdded),
    line("  dump, whole command (Node start-up incl.)", (s) => s.dumpCommandMs),
    line("restore (restore() call, until it runs)", (s) => s.restoreMs, p.restore, p.restoreAdded),
    line("  restore, whole command (Node start-up incl.)", (s) => s.restoreCommandMs),
    line("downtime = dump frozen + restore", (s) => s.downtimeMs, p.downtime, p.downtimeAdded),
    line("  freeze → running, end to end here", (s) => s.downtimeEndToEndMs),
    row(["ferry peak RSS, dump / restore", `${mib(t.loaded.dumpPeakRssMiB)} / ${mib(t.loaded.restorePeakRssMiB)}`, `${mib(t.baseline.dumpPeakRssMiB)} / ${mib(t.baseline.restorePeakRssMiB)}`, "", ""]),
    row(["image size", `${(t.loaded.imageBytes / 2 ** 10).toFixed(0)} KiB`, `${(t.baseline.imageBytes / 2 ** 10).toFixed(0)} KiB`, "", ""]),
    row(["victim after restore (every connection both ways)", t.loaded.verdict, t.baseline.verdict, "", ""]),
    "",
    "¹ (with connections − listener only) ÷ connections: what the connections themselves cost, the process's own dump and restore taken out.",
    "",
  ].join("\n");
}

function compressionCell(s: MigrateModeSummary): string {
  const c = s.runs[0].compression;
  const link = c.measured?.linkBps ? `, link ${(c.measured.linkBps / 1e6).toFixed(0)} MB/s` : "";
  return `${c.used ? `on, ratio ${c.ratio}` : "off"} (${c.framesCompressed}/${c.framesSent}${link})`;
}

/** The migration scenario: each mode beside the issue's targets and the link measured in the same run. */
export function renderMigrate(m: MigrateReport, runs: number): string {
  const { shape, link, targets } = m;
  const memBytes = shape.totalMiB * 2 ** 20;
  const size = shape.totalMiB % 1024 === 0 ? `${shape.totalMiB / 1024} GiB` : `${shape.totalMiB} MiB`;
  const atTls = (bytes: number) => sec(bytes / (link.tlsGBps * 1e6));
  const head = ["", ...m.modes.map((s) => s.mode), "target", "physical limit (this run)"];
  const line = (label: string, cell: (s: MigrateModeSummary) => string, target = "", limit = "") => row([label, ...m.modes.map(cell), target, limit]);
  const mark = (ok: boolean) => (ok ? " ✓" : " ✗");
  const downtimeTarget = (s: MigrateModeSummary) => s.mode === "precopy" || s.mode === "hybrid";
  return [
    `## ferry: live migration of ${size} between two hosts (${shape.hotMiB} MiB hot set)`,
    "",
    `Medians of ${runs} run(s) per mode, the modes in turn. Victim: test/victims/migrate_hot.c — ${shape.totalMiB - shape.hotMiB} MiB written once, ` +
      `${shape.hotMiB} MiB rewritten all the time (${shape.pagesPerTick} pages per ~1 ms tick), every page checked at the destination. ` +
      "hA and hB are network + PID + mount namespaces joined by a veth with MTU 1500 (src/hosts/hosts.ts); `ferry agent` in hB, `ferry migrate` in hA, " +
      "TLS with a pre-shared key (the default). Nothing is pinned: the victim, both ferry processes and the rest of this machine share its CPUs.",
    "",
    row(head),
    row(head.map(() => "---")),
    line("downtime (freeze → running at hB)", (s) => ms(s.downtimeMs) + (downtimeTarget(s) ? mark(s.downtimeMs <= targets.downtimeMs) : ""),
      `≤ ${targets.downtimeMs} ms (precopy, hybrid)`, `stop-copy of ${size} at TLS speed: ${atTls(memBytes)}`),
    line("total time", (s) => sec(s.totalMs), "", `${size} once at TLS speed: ${atTls(memBytes)}`),
    line("bytes sent", (s) => `${mib(s.bytesSent / 2 ** 20)}`),
    line("  ÷ memory size", (s) => times(s.bytesPerMemory)),
    line("  ÷ (touched + re-dirtied after it was sent) ¹", (s) => times(s.bytesPerMoved) + mark(s.bytesPerMoved <= targets.bytesRatio), `≤ ${targets.bytesRatio}`),
    line("pre-copy rounds", (s) => String(s.rounds)),
    line("faults served (lazy)", (s) => String(s.faults)),
    line("compression (--compress auto) ³", (s) => compressionCell(s)),
    line("victim's rewrite rate during the rounds ²", (s) => (s.dirtyMBps === null ? "" : `${s.dirtyMBps.toFixed(0)} MB/s`)),
    line("victim at the destination (every page)", (s) => s.verdict),
    "",
    `Link hA → hB, one connection, ${mib(link.bytes / 2 ** 20)} of random bytes per try, best of 3: plain TCP ${link.tcpGBps.toFixed(2)} GB/s, ` +
      `TLS ${link.tlsGBps.toFixed(2)} GB/s (${size} in ${atTls(memBytes)}).`,
    "",
    "¹ Touched: the distinct pages that travelled (the victim's memory, heap and stack); re-dirtied: pages sent again because the victim wrote them after they were sent. " +
      "Pages the lazy page server sent twice (a fault met them on their way) count against the ratio.",
    "² Pages found written per second by the rounds after the first (the dirty tracker's count), the median round.",
    "³ Frames compressed of frames sent on the control connection (rounds, images) in the first run, and the rate the link carried while sends waited for it, as auto measured it (the agent's pace included); the victim's memory is random-looking, so compression does not pay.",
    "",
  ].join("\n");
}
