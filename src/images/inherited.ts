import type { VmaImage } from "./types.js";

/** VmFlags that change what a child gets of the mapping at fork. */
const NOT_INHERITED = ["dc", "wf"];

/**
 * The parent's VMA that a child's VMA is a fork-time copy of, or undefined. Only where the
 * kernel's fork gives the child exactly the parent's mapping: a private anonymous VMA with the
 * same bounds, protections and flags in both, neither MADV_DONTFORK nor MADV_WIPEONFORK.
 */
export function sameMapping(v: VmaImage, parentVmas: VmaImage[]): VmaImage | undefined {
  if (v.kind !== "anon" || v.shared || !v.hasPages || v.lazy) return undefined;
  const p = parentVmas.find((q) => q.start === v.start && q.end === v.end);
  if (!p || p.kind !== "anon" || p.shared || !p.hasPages || p.lazy || p.prot !== v.prot || p.path !== v.path) return undefined;
  if (p.vmflags.length !== v.vmflags.length || p.vmflags.some((f, i) => f !== v.vmflags[i])) return undefined;
  if (NOT_INHERITED.some((f) => v.vmflags.includes(f))) return undefined;
  return p;
}

