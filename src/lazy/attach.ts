import fs from "node:fs";
import { FerryError } from "../errors.js";
import { NR, O, sys } from "../kernel/sys.js";
import type { Injector } from "../kernel/inject.js";
import { UFFD_FEATURE, UFFDIO_REGISTER_MODE, createUffd, featureNames, uffdApi, uffdRegister } from "../kernel/uffd.js";
import type { Inventory, VmaImage } from "../images/types.js";

/**
 * The restore side of a lazy migration: the process's userfaultfd.
 *
 * It is created *inside* the process by an injected userfaultfd() (so it is bound to the
 * process's mm, not ferry's), while the restored process still has ferry's privileges; ferry
 * takes a copy with pidfd_getfd and closes the process's own, so the process's fd table is
 * exactly the dumped one. Lazy ranges are registered last, after every injected call: a kernel
 * access to a missing page during the restore would otherwise wait for a daemon that the
 * restore itself blocks.
 */
export interface TargetUffd {
  /** ferry's copy of the process's userfaultfd (non-blocking, close-on-exec) */
  fd: number;
  pid: number;
  /** UFFD_FEATURE bits enabled */
  features: number;
  /** the ranges registered (MISSING) */
  ranges: { start: number; end: number }[];
}

/** Non-cooperative events ferry follows; missing ones degrade to clear errors, never to lost pages. */
const WANTED = UFFD_FEATURE.EVENT_FORK | UFFD_FEATURE.EVENT_REMAP | UFFD_FEATURE.EVENT_REMOVE | UFFD_FEATURE.EVENT_UNMAP | UFFD_FEATURE.THREAD_ID;
/** Without these a lazy process could silently read zeros where its memory should be. */
const REQUIRED = UFFD_FEATURE.EVENT_REMAP | UFFD_FEATURE.EVENT_REMOVE | UFFD_FEATURE.EVENT_UNMAP;

/** Lazy images need a lazy restore, and the other way round. */
export function checkLazyRestore(inventory: Inventory, dir: string, lazy: boolean): void {
  if (inventory.lazy && !lazy) {
    throw new FerryError("FERRY_LAZY_IMAGES", `${dir} holds lazy images (its memory is still on the source): restore them with --lazy and a lazy-pages daemon (or --page-server ADDR:PORT)`);
  }
  if (!inventory.lazy && lazy) {
    throw new FerryError("FERRY_NOT_LAZY", `${dir} was not dumped with --lazy: restore it without --lazy`);
  }
}

/** The userfaultfd features this kernel offers (asked on a throwaway uffd of our own). */
export function supportedUffdFeatures(): number {
  const { fd } = createUffd();
  try {
    return uffdApi(fd, 0).features;
  } finally {
    fs.closeSync(fd);
  }
}

/** Create the process's userfaultfd inside it and take it over. The process is stopped under `inj`. */
export function createTargetUffd(inj: Injector): { fd: number; features: number } {
  const supported = supportedUffdFeatures();
  const missing = REQUIRED & ~supported;
  if (missing) {
    throw new FerryError("FERRY_UFFD_FEATURES", `this kernel's userfaultfd lacks ${featureNames(missing).join(", ")}: lazy restore would lose memory, use a plain restore`);
  }
  const features = WANTED & supported;
  return { fd: takeUffdFromInside(inj, features), features };
}

/**
 * A userfaultfd made inside the stopped process by an injected userfaultfd() (so it is bound to
 * the process's mm), taken over with pidfd_getfd, the process's own fd closed again; the
 * UFFDIO_API handshake is done with `features`. Returns ferry's copy (non-blocking, cloexec).
 */
export function takeUffdFromInside(inj: Injector, features: number): number {
  const inside = inj.ok("userfaultfd", NR.userfaultfd, O.CLOEXEC | O.NONBLOCK);
  let fd = -1;
  try {
    const pidfd = sys("pidfd_open", NR.pidfd_open, inj.pid, 0);
    try {
      fd = sys("pidfd_getfd", NR.pidfd_getfd, pidfd, inside, 0);
    } finally {
      fs.closeSync(pidfd);
    }
  } finally {
    inj.ok("close userfaultfd", NR.close, inside);
  }
  try {
    uffdApi(fd, features);
    return fd;
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** Register `vmas` (MISSING mode), adjacent ones as one range; returns the ranges. */
export function registerRanges(fd: number, vmas: VmaImage[]): { start: number; end: number }[] {
  const ranges: { start: number; end: number }[] = [];
  for (const v of [...vmas].sort((a, b) => a.start - b.start)) {
    const last = ranges[ranges.length - 1];
    if (last && last.end === v.start) last.end = v.end;
    else ranges.push({ start: v.start, end: v.end });
  }
  for (const r of ranges) uffdRegister(fd, r.start, r.end - r.start, UFFDIO_REGISTER_MODE.MISSING);
  return ranges;
}

/** Register the lazy mappings of the image (MISSING mode). */
export function registerLazyRanges(pid: number, uffd: { fd: number; features: number }, vmas: VmaImage[]): TargetUffd {
  const ranges = registerRanges(uffd.fd, vmas.filter((v) => v.lazy));
  return { fd: uffd.fd, pid, features: uffd.features, ranges };
}
