import fs from "node:fs";
import { PAGE_SIZE } from "../kernel/sys.js";
import { PM, readPagemap } from "../kernel/mem.js";
import type { LazyRunImage, VmaImage } from "../images/types.js";
import { sameMapping } from "../images/inherited.js";
import { parentIn, type FrozenProcess } from "./tree.js";

/**
 * Private memory still copy-on-write shared between a child and its parent since a fork. A page
 * of the child's whose physical frame (PFN, visible in /proc/PID/pagemap to root) is the very
 * frame its parent maps at the same address holds what the parent's page holds: it is left out
 * of the child's page file and recorded as inherited. The restore fills the parent first, clones
 * the child from it and lets the child keep that mapping, so the page is shared again.
 * Only in mappings a fork gives the child unchanged (see sameMapping).
 *
 * The frames must be compared before any page of the tree is read: process_vm_readv pins the
 * pages it reads, and the kernel unshares an anonymous page shared since fork before it lets
 * another process pin it (the parent ends up with a copy of its own, the same content).
 */

const PRESENT = Number(PM.PRESENT >> 32n);
const PFN_HIGH = (1 << 23) - 1; // PFN bits 32-54

/** For every process of the (frozen) tree whose parent is in it too: its inherited pages. */
export function inheritedPagesOfTree(tree: FrozenProcess[], vmas: Map<number, VmaImage[]>): Map<number, LazyRunImage[]> {
  const vmasOf = (pid: number) => vmas.get(pid) ?? [];
  const out = new Map<number, LazyRunImage[]>();
  for (const p of tree) {
    const parent = parentIn(tree, p.pid);
    if (p.zombie || !parent || parent.zombie) continue;
    const runs = inheritedRuns(p.pid, vmasOf(p.pid), parent.pid, vmasOf(parent.pid));
    if (runs.length) out.set(p.pid, runs);
  }
  return out;
}

/** For every parent: the pages its children inherited from it, as sorted, disjoint runs. */
export function sharedWithChildren(tree: FrozenProcess[], inherited: Map<number, LazyRunImage[]>): Map<number, LazyRunImage[]> {
  const out = new Map<number, LazyRunImage[]>();
  for (const parent of tree) {
    const runs = parent.children.flatMap((c) => inherited.get(c) ?? []).sort((a, b) => a.vaddr - b.vaddr);
    const merged: LazyRunImage[] = [];
    for (const r of runs) {
      const last = merged[merged.length - 1];
      const lastEnd = last ? last.vaddr + last.nrPages * PAGE_SIZE : -1;
      if (last && r.vaddr <= lastEnd) last.nrPages = Math.max(lastEnd, r.vaddr + r.nrPages * PAGE_SIZE) / PAGE_SIZE - last.vaddr / PAGE_SIZE;
      else merged.push({ ...r });
    }
    if (merged.length) out.set(parent.pid, merged);
  }
  return out;
}

/** Page ranges of `pid` that map the same frame as `parentPid` at the same address (both frozen). */
function inheritedRuns(pid: number, vmas: VmaImage[], parentPid: number, parentVmas: VmaImage[]): LazyRunImage[] {
  const mine = vmas.filter((v) => sameMapping(v, parentVmas));
  if (!mine.length) return [];
  const runs: LazyRunImage[] = [];
  const own = fs.openSync(`/proc/${pid}/pagemap`, "r");
  const theirs = fs.openSync(`/proc/${parentPid}/pagemap`, "r");
  const CHUNK = 1 << 15; // pages compared at once (256 KiB of entries per process)
  try {
    for (const v of mine) {
      const first = runs.length; // a run never spans two VMAs: the restore keeps each VMA on its own
      for (let base = v.start; base < v.end; base += CHUNK * PAGE_SIZE) {
        const end = Math.min(v.end, base + CHUNK * PAGE_SIZE);
        // little endian 32-bit halves: the PFN is bits 0-54, PRESENT bit 63
        const a = new Uint32Array(readPagemap(own, base, end).buffer), b = new Uint32Array(readPagemap(theirs, base, end).buffer);
        for (let i = 0; i < a.length; i += 2) {
          // present in both (not swapped), and a real frame number: without CAP_SYS_ADMIN it reads 0
          const same = (a[i + 1] & PRESENT) !== 0 && (b[i + 1] & PRESENT) !== 0 && a[i] === b[i]
            && (a[i + 1] & PFN_HIGH) === (b[i + 1] & PFN_HIGH) && (a[i] !== 0 || (a[i + 1] & PFN_HIGH) !== 0);
          if (!same) continue;
          const addr = base + (i / 2) * PAGE_SIZE;
          const last = runs.length > first ? runs[runs.length - 1] : undefined;
          if (last && last.vaddr + last.nrPages * PAGE_SIZE === addr) last.nrPages++;
          else runs.push({ vaddr: addr, nrPages: 1 });
        }
      }
    }
  } finally {
    fs.closeSync(own);
    fs.closeSync(theirs);
  }
  return runs;
}
