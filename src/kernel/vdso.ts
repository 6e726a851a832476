import crypto from "node:crypto";
import { peekMem } from "./mem.js";
import { readMaps, type Vma } from "./procfs.js";

/**
 * The identity of a process's vDSO: restored code keeps pointers into it, so it must be the same.
 * Found in /proc/PID/maps, not smaps: the restore asks it of ferry itself, whose agent may hold a
 * gigabyte of pre-copied pages that smaps would walk while the process waits.
 */
export function vdsoIdentity(pid: number | "self" = "self", vmas?: Vma[]): { sha256: Buffer; size: number } {
  const id = pid === "self" ? process.pid : pid;
  const v = (vmas ?? readMaps(id)).find((x) => x.path === "[vdso]");
  if (!v) return { sha256: Buffer.alloc(0), size: 0 };
  const bytes = peekMem(id, v.start, v.end - v.start);
  return { sha256: crypto.createHash("sha256").update(bytes).digest(), size: bytes.length };
}
