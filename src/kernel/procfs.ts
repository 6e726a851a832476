import fs from "node:fs";

/** One line of /proc/PID/smaps, with its VmFlags. Addresses are numbers: user space ends below 2^47. */
export interface Vma {
  start: number;
  end: number;
  perms: string; // "rw-p"
  offset: number;
  dev: string;
  inode: number;
  path: string; // "" for anonymous, "[heap]", "/usr/lib/..", "/memfd:x (deleted)"
  flags: string[]; // VmFlags: rd wr ex sh mr mw me ms gd pf dw lo io sr rr dc de ac nr ht ar dd sd mm hg nh mg ...
}

const VMA_LINE = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) (\S+) (\d+)\s*(.*)$/;

export function readVmas(pid: number): Vma[] {
  return parseVmas(fs.readFileSync(`/proc/${pid}/smaps`, "utf8"));
}

/**
 * The mappings without their VmFlags (`flags` empty), from /proc/PID/maps: reading smaps makes
 * the kernel walk every page table entry of the process for its counters (8 ms for 256 MiB of
 * memory, 22 ms for 1 GiB here), maps does not. For where the flags do not matter.
 */
export function readMaps(pid: number): Vma[] {
  return parseVmas(fs.readFileSync(`/proc/${pid}/maps`, "utf8"));
}

function parseVmas(text: string): Vma[] {
  const out: Vma[] = [];
  let cur: Vma | null = null;
  for (const line of text.split("\n")) {
    const m = VMA_LINE.exec(line);
    if (m) {
      cur = {
        start: parseInt(m[1], 16), end: parseInt(m[2], 16), perms: m[3], offset: parseInt(m[4], 16),
        dev: m[5], inode: Number(m[6]), path: m[7], flags: [],
      };
      out.push(cur);
    } else if (cur && line.startsWith("VmFlags:")) {
      cur.flags = line.slice(8).trim().split(/\s+/);
    }
  }
  return out.filter((v) => v.path !== "[vsyscall]");
}

export function readStatus(pid: number): Record<string, string> {
  const o: Record<string, string> = {};
  for (const line of fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) o[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return o;
}

/** /proc/PID/stat fields after the command name; index 0 is field 3 (state). */
export function readStat(pid: number): { comm: string; fields: string[] } {
  const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const l = s.indexOf("("), r = s.lastIndexOf(")");
  return { comm: s.slice(l + 1, r), fields: s.slice(r + 2).trim().split(" ") };
}
/** Field N of /proc/PID/stat as man 5 proc numbers it (1-based). */
export function statField(stat: { fields: string[] }, n: number): string {
  return stat.fields[n - 3];
}

/** The state letter of /proc/PID/stat (R, S, T, t, Z...), or null when there is no such process. */
export function processState(pid: number): string | null {
  try {
    return statField(readStat(pid), 3);
  } catch {
    return null;
  }
}

export function readFdinfo(pid: number, fd: number): Record<string, string> {
  const o: Record<string, string> = {};
  const lines = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8").split("\n");
  for (const line of lines) {
    const i = line.indexOf(":");
    if (i > 0 && !(line.slice(0, i) in o)) o[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  o["__raw"] = lines.join("\n");
  return o;
}

export function listTasks(pid: number): number[] {
  return fs.readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
}

export function listFds(pid: number): number[] {
  return fs.readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
}

export function processExists(pid: number): boolean {
  return fs.existsSync(`/proc/${pid}`);
}

/** System V shared memory segments of this IPC namespace, by id. */
export function readSysvShm(): Map<number, { key: number; size: number; mode: number }> {
  const out = new Map<number, { key: number; size: number; mode: number }>();
  const lines = fs.readFileSync("/proc/sysvipc/shm", "utf8").trim().split("\n").slice(1);
  for (const line of lines) {
    const [key, shmid, perms, size] = line.trim().split(/\s+/);
    out.set(Number(shmid), { key: Number(key) >>> 0, size: Number(size), mode: parseInt(perms, 8) });
  }
  return out;
}
