import { native } from "./native.js";
import { _IOWR, ioctl } from "./ioctl.js";

/*
 * PAGEMAP_SCAN (Linux 6.7+): one ioctl on /proc/PID/pagemap lists page ranges by category
 * (present, written since write-protect, ...) and can write-protect what it matched in the same
 * call. From the kernel's include/uapi/linux/fs.h; the machine's 6.1 headers do not have it.
 */

/** Page categories: masks in the request, and what `categories` of a region reports. */
export const PAGE_IS = {
  WPALLOWED: 1 << 0, // in a range registered WP with UFFD_FEATURE_WP_ASYNC
  WRITTEN: 1 << 1, // written since it was last write-protected (the dirty set)
  FILE: 1 << 2,
  PRESENT: 1 << 3,
  SWAPPED: 1 << 4,
  PFNZERO: 1 << 5, // mapped to the shared zero page
  HUGE: 1 << 6,
  SOFT_DIRTY: 1 << 7, // only with CONFIG_MEM_SOFT_DIRTY
  GUARD: 1 << 8, // MADV_GUARD_INSTALL guard region (6.15+)
} as const;

export const PM_SCAN = {
  /** Write-protect the pages that matched (re-arms dirty tracking in the same pass). */
  WP_MATCHING: 1 << 0,
  /** Abort when a page is met that does not have async write-protection enabled. */
  CHECK_WPASYNC: 1 << 1,
} as const;

/** struct pm_scan_arg: twelve u64 (size, flags, start, end, walk_end, vec, vec_len, max_pages,
 *  category_inverted, category_mask, category_anyof_mask, return_mask). */
export const PM_SCAN_ARG_SIZE = 96;
/** struct page_region: u64 start, end (exclusive), categories. */
export const PAGE_REGION_SIZE = 24;
/** _IOWR('f', 16, struct pm_scan_arg) = 0xc0606610 */
export const PAGEMAP_SCAN = _IOWR(0x66, 16, PM_SCAN_ARG_SIZE);

export interface PagemapScanOptions {
  /** Categories that must all be set (after inversion) for a page to match. */
  categoryMask?: number;
  /** At least one of these categories must be set (after inversion); 0 = no such condition. */
  categoryAnyof?: number;
  /** Categories whose value is inverted before matching ("not PFNZERO", ...). */
  categoryInvertedMask?: number;
  /** Categories reported in each region; regions split where these change. Default: mask | anyof. */
  returnMask?: number;
  /** PM_SCAN flags. */
  flags?: number;
  /** Stop after this many matching pages (0 = no limit). */
  maxPages?: number;
  /** Room for this many regions per call; the walk stops early when it is full. Default 1024. */
  maxRegions?: number;
}

export interface PageRegion {
  start: number;
  end: number; // exclusive
  categories: number;
}

export interface PagemapScanResult {
  regions: PageRegion[];
  /** Where the walk stopped: `end` when the whole range was scanned, less when the region
   *  array or maxPages ran out (scan again from here). */
  walkEnd: number;
}

/**
 * Scan [start, end) of the process whose /proc/PID/pagemap is open as `pagemapFd` (read access
 * is enough for a pure scan; WP_MATCHING needs the range registered with a WP_ASYNC uffd).
 */
export function pagemapScan(pagemapFd: number, start: number, end: number, opts: PagemapScanOptions = {}): PagemapScanResult {
  const maxRegions = opts.maxRegions ?? 1024;
  const vec = Buffer.alloc(maxRegions * PAGE_REGION_SIZE);
  const arg = Buffer.alloc(PM_SCAN_ARG_SIZE);
  const mask = opts.categoryMask ?? 0;
  const anyof = opts.categoryAnyof ?? 0;
  const fields = [
    PM_SCAN_ARG_SIZE, opts.flags ?? 0, start, end, 0, native.addressOf(vec), maxRegions,
    opts.maxPages ?? 0, opts.categoryInvertedMask ?? 0, mask, anyof, opts.returnMask ?? (mask | anyof),
  ];
  fields.forEach((v, i) => arg.writeBigUInt64LE(BigInt(v), i * 8));
  const n = ioctl(`ioctl(PAGEMAP_SCAN, 0x${start.toString(16)}-0x${end.toString(16)})`, pagemapFd, PAGEMAP_SCAN, arg);
  const regions: PageRegion[] = [];
  for (let i = 0; i < n; i++) {
    const o = i * PAGE_REGION_SIZE;
    regions.push({
      start: Number(vec.readBigUInt64LE(o)),
      end: Number(vec.readBigUInt64LE(o + 8)),
      categories: Number(vec.readBigUInt64LE(o + 16)),
    });
  }
  return { regions, walkEnd: Number(arg.readBigUInt64LE(32)) };
}

/**
 * Scan the whole of [start, end), calling PAGEMAP_SCAN again from walkEnd as long as the region
 * array filled up. (With maxPages the caller wants to stop early: use pagemapScan directly.)
 */
export function pagemapScanAll(pagemapFd: number, start: number, end: number, opts: Omit<PagemapScanOptions, "maxPages"> = {}): PageRegion[] {
  const out: PageRegion[] = [];
  let from = start;
  while (from < end) {
    const { regions, walkEnd } = pagemapScan(pagemapFd, from, end, opts);
    for (const r of regions) {
      const last = out[out.length - 1];
      // the walk may stop inside a run: glue the halves back together
      if (last && last.end === r.start && last.categories === r.categories) last.end = r.end;
      else out.push(r);
    }
    if (walkEnd <= from) break; // no progress: nothing more to report
    from = walkEnd;
  }
  return out;
}
