import { FerryError } from "../errors.js";
import { NR, PAGE_SIZE } from "../kernel/sys.js";
import type { Injector } from "../kernel/inject.js";
import { sameMapping } from "../images/inherited.js";
import type { MmImage, PageMapImage, VmaImage } from "../images/types.js";

/**
 * A child's private memory still shared with its parent since fork (see dump/inherited.ts). The
 * parent is filled before it clones the child; the child keeps the mappings it gets from that
 * clone instead of mapping them afresh, so the pages stay copy-on-write shared as they were.
 * In a kept mapping every page but the inherited ones is dropped first: the pages the child did
 * not have read zeros, as in a fresh mapping, and its own pages are then filled like any others
 * (UFFDIO_COPY into an empty page, no copy-on-write copy of the parent's to overwrite).
 */

/** The child's VMAs to keep from its parent, checked: every inherited run lies in one of them. */
export function keptMappings(file: string, mm: MmImage, pagemap: PageMapImage, parentMm: MmImage | undefined): Set<VmaImage> {
  const kept = new Set<VmaImage>();
  for (const run of pagemap.inheritedRuns ?? []) {
    const end = run.vaddr + run.nrPages * PAGE_SIZE;
    const v = mm.vmas.find((q) => q.start <= run.vaddr && end <= q.end);
    if (!v || !parentMm || !sameMapping(v, parentMm.vmas)) {
      throw new FerryError("FERRY_IMAGE_CORRUPT", `${file}: pages at 0x${run.vaddr.toString(16)} are said to be inherited, but no mapping of the parent's holds them`);
    }
    kept.add(v);
  }
  return kept;
}

/** Address ranges of the image's VMA `v` that hold no inherited pages. */
function uninherited(v: VmaImage, pagemap: PageMapImage): [number, number][] {
  const present = (pagemap.inheritedRuns ?? [])
    .map((r) => [r.vaddr, r.vaddr + r.nrPages * PAGE_SIZE] as [number, number])
    .filter(([s, e]) => s < v.end && v.start < e)
    .sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  let from = v.start;
  for (const [s, e] of present) {
    if (s > from) out.push([from, Math.min(s, v.end)]);
    from = Math.max(from, e);
  }
  if (from < v.end) out.push([from, v.end]);
  return out;
}

/** In the kept mappings, drop the parent's pages but those the child inherited (before the fill). */
export function dropUninherited(inj: Injector, kept: Set<VmaImage>, pagemap: PageMapImage): void {
  const MADV_DONTNEED = 4;
  for (const v of kept) {
    for (const [s, e] of uninherited(v, pagemap)) inj.ok(`madvise(0x${s.toString(16)}, MADV_DONTNEED)`, NR.madvise, s, e - s, MADV_DONTNEED);
  }
}
