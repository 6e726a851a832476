import { CRIU_REFERENCE, TARGETS_1GIB, type BenchReport, type SizeSummary } from "./summary.js";
import type { Limits } from "./limits.js";

const sec = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
const mib = (m: number) => `${m.toFixed(0)} MiB`;
const gbps = (g: number) => `${g.toFixed(2)} GB/s`;
const sizeLabel = (m: number) => (m % 1024 === 0 ? `${m / 1024} GiB` : `${m} MiB`);

/** "✓"/"✗" against the issue's 1 GiB target, only in the 1 GiB column. */
function mark(s: SizeSummary, value: number, target: number): string {
  if (s.sizeMiB !== 1024) return "";
  return value <= target ? " ✓" : " ✗";
}

/** This VM backs guest memory lazily; say whether the run paid for that and how much it costs. */
function warmNote(r: BenchReport): string {
  const warms = r.sizes.flatMap((s) => s.runs.map((c) => c.warm)).filter((w) => w !== null);
  if (!warms.length) {
    return "Memory not warmed (--cold): where the hypervisor has not backed a page yet, its first touch is counted in ferry's figures.";
  }
  const slowest = Math.min(...warms.map((w) => w.slowestGBps));
  const typical = warms.map((w) => w.medianGBps).sort((a, b) => a - b)[warms.length >> 1];
  return `Before each cycle, 3× its size + ${r.options.quick ? 256 : 1024} MiB of memory was touched and freed, so that the victim, the images and the restored process land on memory this VM's hypervisor backs already ` +
    `(first touch while warming: slowest 64 MiB ${gbps(slowest)}, median ${gbps(typical)}); \`--cold\` skips this.`;
}

function row(cells: string[]): string {
  return `| ${cells.join(" | ")} |`;
}

/** The readable report: ferry's figures, the limits measured in the same run, CRIU for reference. */
export function renderTable(r: BenchReport & { limits: Limits }): string {
  const sizes = r.sizes;
  const criu = CRIU_REFERENCE.sizes;
  const head = ["", ...sizes.map((s) => `ferry ${sizeLabel(s.sizeMiB)}`), "target, 1 GiB", "CRIU 4.2, 256 MiB ¹", "CRIU 4.2, 1 GiB ¹"];
  const line = (label: string, cell: (s: SizeSummary) => string, target = "", criu256 = "", criu1g = "") =>
    row([label, ...sizes.map(cell), target, criu256, criu1g]);
  const out: string[] = [];
  out.push(`## ferry: plain dump and restore, images in /dev/shm`);
  out.push("");
  out.push(`${r.startedAt} · load average ${r.loadAverage.start.toFixed(2)} → ${r.loadAverage.end.toFixed(2)} · kernel ${r.host.kernel} · ${r.host.cpuModel} (${r.host.cpus} CPUs) · Node ${r.host.node} · ferry ${r.host.ferryCommit}${r.options.profile ? " · **under --cpu-prof: times inflated**" : ""}`);
  const ferryCpus = r.ferryCpus ?? String(r.pinnedCpu);
  out.push(`${ferryCpus === String(r.pinnedCpu) ? `ferry and the victim pinned to CPU ${r.pinnedCpu}` : `victim pinned to CPU ${r.pinnedCpu}, ferry to CPUs ${ferryCpus} (its page helper thread takes the second)`}; medians of ${r.options.runs} run(s) per size; victim: bench/victims/sweeper.c (every page its own content, rewritten in a loop).`);
  out.push(warmNote(r));
  out.push("");
  out.push(row(head));
  out.push(row(head.map(() => "---")));
  out.push(line("dump (dump() call), median (best)", (s) => `${sec(s.dumpMs)}${mark(s, s.dumpMs, TARGETS_1GIB.dumpMs)} (${sec(s.dumpBestMs)})`, `≤ ${sec(TARGETS_1GIB.dumpMs)}`, criu[256].dump, criu[1024].dump));
  out.push(line("  of which frozen", (s) => sec(s.dumpFrozenMs)));
  out.push(line("  floor: process_vm_readv + /dev/shm write ²", (s) => sec(s.dumpFloorMs)));
  out.push(line("  dump, whole command (Node start-up incl.) ⁶", (s) => sec(s.dumpCommandMs)));
  out.push(line("restore (restore() call, until it runs), median (best)", (s) => `${sec(s.restoreMs)}${mark(s, s.restoreMs, TARGETS_1GIB.restoreMs)} (${sec(s.restoreBestMs)})`, `≤ ${sec(TARGETS_1GIB.restoreMs)}`, criu[256].restore, criu[1024].restore));
  out.push(line("  floor: /dev/shm read + process_vm_writev into fresh memory ²", (s) => sec(s.restoreFloorMs)));
  out.push(line("  restore, whole command (Node start-up incl.)", (s) => sec(s.restoreCommandMs)));
  out.push(line("downtime = dump frozen + restore ³", (s) => sec(s.downtimeMs)));
  out.push(line("  freeze → running, end to end here ⁴", (s) => sec(s.downtimeEndToEndMs)));
  out.push(line("ferry throughput, dump / restore", (s) => `${gbps(s.dumpGBps)} / ${gbps(s.restoreGBps)}`));
  out.push(line("ferry CPU time ÷ wall time, dump / restore ⁷", (s) => `${s.dumpCpuShare.toFixed(2)} / ${s.restoreCpuShare.toFixed(2)}`));
  out.push(line("ferry peak RSS, dump / restore ⁵", (s) => `${mib(s.dumpPeakRssMiB)} / ${mib(s.restorePeakRssMiB)}` + mark(s, Math.max(s.dumpPeakRssMiB, s.restorePeakRssMiB), TARGETS_1GIB.peakRssMiB), `≤ ${mib(TARGETS_1GIB.peakRssMiB)}`));
  out.push(line("  of which Node + modules before the work", (s) => mib(s.baselineRssMiB)));
  out.push(line("image size", (s) => `${(s.imageBytes / 2 ** 20).toFixed(1)} MiB`));
  out.push(line("victim after restore (all pages checked)", (s) => s.verdict));
  out.push("");
  const l = r.limits;
  const at1g = (g: number) => sec((2 ** 30) / (g * 1e6));
  out.push(`Physical limits measured in this run (${mib(l.bytes / 2 ** 20)} per probe, best of 3, on the same CPU; the window is one reused 4 MiB buffer, the shape of ferry's pipeline):`);
  out.push("");
  out.push(row(["limit", "bandwidth", "1 GiB at this speed"]));
  out.push(row(["---", "---", "---"]));
  out.push(row(["memcpy, memory → memory (Buffer.copy)", gbps(l.memcpyGBps), at1g(l.memcpyGBps)]));
  out.push(row(["process_vm_readv from the victim → 4 MiB window (a dump's read)", gbps(l.vmReadvGBps), at1g(l.vmReadvGBps)]));
  out.push(row(["process_vm_readv from the victim → memory", gbps(l.vmReadvToMemoryGBps), at1g(l.vmReadvToMemoryGBps)]));
  out.push(row(["/dev/shm write, new file, 1 MiB calls from the window (a dump's write)", gbps(l.shmWriteGBps), at1g(l.shmWriteGBps)]));
  out.push(row(["/dev/shm read into the window, 4 MiB calls (a restore's read)", gbps(l.shmReadGBps), at1g(l.shmReadGBps)]));
  out.push(row(["process_vm_writev from the window into fresh memory (a restore's write)", gbps(l.vmWritevColdGBps), at1g(l.vmWritevColdGBps)]));
  out.push(row(["memcpy from the window into fresh memory (page faults, no syscall)", gbps(l.memcpyColdGBps), at1g(l.memcpyColdGBps)]));
  out.push(row(["UFFDIO_COPY from the window into fresh memory (no zeroing; ferry does not use it for restore)", gbps(l.uffdCopyColdGBps), at1g(l.uffdCopyColdGBps)]));
  out.push(row(["CRC-32, ferry's page checksum (CPU work, not a limit)", gbps(l.crc32GBps), at1g(l.crc32GBps)]));
  out.push("");
  out.push(`¹ ${CRIU_REFERENCE.source}. The issue quotes 1 GiB dump ${CRIU_REFERENCE.issueQuotes[1024].dump}, restore ${CRIU_REFERENCE.issueQuotes[1024].restore}.`);
  out.push("² The two steps of a one-thread pipeline at the bandwidths measured below, one after the other; overlapping them on two CPUs, or a single copy, could go under it.");
  out.push("³ The process is gone between the dump and the restore; this is the time it is not running when the restore starts at once.");
  out.push("⁴ From the freeze to restore() returning, across two processes: adds the end of the dump process and the restore process's Node start-up.");
  out.push("⁵ getrusage maxrss of the Node process that runs the operation: Node itself, ferry's modules and ferry's buffers.");
  out.push("⁶ The victim runs on the same CPU until it is frozen, so the dump process's Node start-up shares that CPU with it.");
  out.push("⁷ Below ~0.9 the operation's process waited: for the CPU (other work on this machine) or for the process it works on.");
  return out.join("\n") + "\n";
}
