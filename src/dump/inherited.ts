import fs from "node:fs";
import { PAGE_SIZE } from "../kernel/sys.js";
import { PM, readPagemap } from "../kernel/mem.js";
import type { LazyRunImage, VmaImage } from "../images/types.js";
import { sameMapping } from "../images/inherited.js";
import { readVmas } from "../kernel/procfs.js";
import { describeVma } from "./mm.js";
import type { FrozenProcess } from "./tree.js";

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

/** For every process of the (frozen) tree whose parent is in it too: its inherited pages. */
export function inheritedPagesOfTree(tree: FrozenProcess[]): Map<number, LazyRunImage[]> {
  const vmas = new Map<number, VmaImage[]>();
  const vmasOf = (pid: number) => {
    if (!vmas.has(pid)) vmas.set(pid, readVmas(pid).map((v) => describeVma(v)));
    return vmas.get(pid)!;
  };
  const out = new Map<number, LazyRunImage[]>();
  for (const p of tree) {
    const parent = tree.find((q) => q.children.includes(p.pid));
    if (p.zombie || !parent || parent.zombie) continue;
    const runs = inheritedRuns(p.pid, vmasOf(p.pid), parent.pid, vmasOf(parent.pid));
    if (runs.length) out.set(p.pid, runs);
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
  const PFN = (1n << 55n) - 1n;
  try {
    for (const v of mine) {
      for (let base = v.start; base < v.end; base += CHUNK * PAGE_SIZE) {
        const end = Math.min(v.end, base + CHUNK * PAGE_SIZE);
        const a = readPagemap(own, base, end), b = readPagemap(theirs, base, end);
        for (let i = 0; i < a.length; i++) {
          // present in both (not swapped), and a real frame number: without CAP_SYS_ADMIN it reads 0
          const same = (a[i] & PM.PRESENT) !== 0n && (b[i] & PM.PRESENT) !== 0n && (a[i] & PFN) !== 0n && (a[i] & PFN) === (b[i] & PFN);
          if (!same) continue;
          const addr = base + i * PAGE_SIZE;
          const last = runs[runs.length - 1];
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
