import fs from "node:fs";
import { PAGE_SIZE } from "../sys.js";
import { PM, readPagemap } from "../mem.js";
import { SelfMapping } from "../selfMapping.js";
import {
  UFFD_FEATURE, UFFDIO_REGISTER_MODE, createUffd, uffdApi, uffdRegister, uffdCopy, uffdZeropage,
  uffdMove, uffdWriteProtect, type UffdFeatureName,
} from "../uffd.js";
import { PAGE_IS, pagemapScan, type PageRegion } from "../pagemapScan.js";
import { type Probe, type ProbeResult, ok, missing, errText } from "./probe.js";

/*
 * Probes of memory machinery, all run on ferry's own memory: a uffd registered on pages of
 * our own, PAGEMAP_SCAN of /proc/self/pagemap. Registrations use UFFD_FEATURE_SIGBUS where a
 * page might be missing, so a mistake gives EFAULT instead of a thread waiting forever on a
 * fault nobody will serve.
 */

function withUffd<T>(fn: (fd: number, via: string) => T): T {
  const { fd, via } = createUffd();
  try {
    return fn(fd, via);
  } finally {
    fs.closeSync(fd);
  }
}
function withPages<T>(n: number, fn: (m: SelfMapping) => T, opts: { shared?: boolean } = {}): T {
  const m = SelfMapping.pages(n, opts);
  try {
    return fn(m);
  } finally {
    m.unmap();
  }
}
function withPagemap<T>(fn: (fd: number) => T): T {
  const fd = fs.openSync("/proc/self/pagemap", "r");
  try {
    return fn(fd);
  } finally {
    fs.closeSync(fd);
  }
}
/** Page indexes of regions inside mapping m, as "[2,3)". */
function pagesOf(m: SelfMapping, regions: PageRegion[]): string {
  return regions.map((r) => `[${(r.start - m.addr) / PAGE_SIZE},${(r.end - m.addr) / PAGE_SIZE})`).join(" ");
}

const userfaultfdProbe: Probe = {
  name: "userfaultfd",
  required: true,
  enables: "lazy migration: a process resumes on the destination before its memory has arrived",
  without: "no lazy (post-copy) or hybrid migration, and no pre-copy dirty tracking: only stop-and-copy",
  run() {
    return withUffd((fd, via) => {
      const { features } = uffdApi(fd, UFFD_FEATURE.SIGBUS);
      return withPages(2, (m) => {
        uffdRegister(fd, m.addr, m.len, UFFDIO_REGISTER_MODE.MISSING);
        const page = Buffer.alloc(PAGE_SIZE, 0xfe);
        uffdCopy(fd, m.page(0), page, PAGE_SIZE);
        uffdZeropage(fd, m.page(1), PAGE_SIZE);
        if (!m.read(0, 2 * PAGE_SIZE).equals(Buffer.concat([page, Buffer.alloc(PAGE_SIZE)]))) {
          return missing("UFFDIO_COPY/ZEROPAGE did not put the expected bytes in place");
        }
        const how = via === "syscall" ? "userfaultfd(2)" : "/dev/userfaultfd (the syscall is refused)";
        return ok(`${how}, UFFDIO_API 0x${features.toString(16)}; MISSING registration, COPY and ZEROPAGE filled pages`);
      });
    });
  },
};

/** Exercise a feature on a uffd whose handshake asked for it; returns what was shown. */
type Exercise = (fd: number) => ProbeResult;

/**
 * A line per uffd feature bit ferry uses: a fresh uffd's UFFDIO_API must accept the bit (the
 * kernel refuses bits it lacks, and EVENT_FORK without CAP_SYS_PTRACE); where it can be done
 * in our own process without deadlocking it, the feature is also used for real. (Events block
 * the process that causes them until the handler reads them: those are only handshaken.)
 */
function uffdBit(name: UffdFeatureName, required: boolean, enables: string, without: string, exercise?: Exercise, extra = 0): Probe {
  const bit = UFFD_FEATURE[name];
  return {
    name: `uffd ${name}`, required, enables, without,
    run() {
      return withUffd((fd) => {
        try {
          uffdApi(fd, bit | extra);
        } catch (e) {
          return missing(`UFFDIO_API refused the feature: ${errText(e)}`);
        }
        return exercise ? exercise(fd) : ok("accepted by UFFDIO_API");
      });
    },
  };
}

const shmemExercise: Exercise = (fd) =>
  withPages(1, (m) => {
    uffdRegister(fd, m.addr, m.len, UFFDIO_REGISTER_MODE.MISSING);
    const page = Buffer.alloc(PAGE_SIZE, 0x5d);
    uffdCopy(fd, m.addr, page, PAGE_SIZE);
    if (!m.read(0, PAGE_SIZE).equals(page)) return missing("UFFDIO_COPY into shared memory did not land");
    return ok("accepted; UFFDIO_COPY filled a missing MAP_SHARED|MAP_ANONYMOUS page");
  }, { shared: true });

/** Write-protect 4 pages, write one, and ask PAGEMAP_SCAN which pages were written. */
function dirtyExercise(populated: boolean): Exercise {
  return (fd) =>
    withPages(4, (m) =>
      withPagemap((pm) => {
        if (populated) m.write(0, Buffer.alloc(m.len, 1));
        uffdRegister(fd, m.addr, m.len, UFFDIO_REGISTER_MODE.WP);
        uffdWriteProtect(fd, m.addr, m.len, true);
        m.write(2 * PAGE_SIZE, Buffer.from("dirty"));
        const { regions } = pagemapScan(pm, m.addr, m.addr + m.len, { categoryMask: PAGE_IS.WRITTEN });
        const got = pagesOf(m, regions);
        if (got !== "[2,3)") return missing(`after a write to page 2 of 4 ${populated ? "populated" : "untouched"} write-protected pages, PAGEMAP_SCAN says written: ${got || "none"}`);
        return ok(`accepted; 4 ${populated ? "populated" : "never-touched"} pages write-protected, one written: PAGEMAP_SCAN's dirty set is exactly that page`);
      }),
    );
}

const moveExercise: Exercise = (fd) =>
  withPages(1, (src) =>
    withPages(1, (dst) =>
      withPagemap((pm) => {
        const page = Buffer.alloc(PAGE_SIZE, 0x3c);
        src.write(0, page);
        uffdRegister(fd, dst.addr, dst.len, UFFDIO_REGISTER_MODE.MISSING);
        uffdMove(fd, dst.addr, src.addr, PAGE_SIZE);
        const left = pagemapScan(pm, src.addr, src.addr + src.len, { categoryMask: PAGE_IS.PRESENT }).regions;
        if (!dst.read(0, PAGE_SIZE).equals(page) || left.length) return missing("UFFDIO_MOVE did not move the page");
        return ok("accepted; UFFDIO_MOVE moved a page into a missing range (the source is left empty)");
      }),
    ),
  );

const uffdBitProbes: Probe[] = [
  uffdBit("EVENT_FORK", true, "lazy migration keeps serving a process that forks meanwhile",
    "a process that forks during lazy migration would leave its child's memory unserved: use --mode precopy"),
  uffdBit("EVENT_REMAP", true, "mremap during lazy migration is followed",
    "a process that mremaps during lazy migration would get pages at the wrong address: use --mode precopy"),
  uffdBit("EVENT_REMOVE", true, "madvise(MADV_DONTNEED) during lazy migration reads back zeros, as it should",
    "memory a process discards during lazy migration could come back with old contents: use --mode precopy"),
  uffdBit("EVENT_UNMAP", true, "munmap during lazy migration is followed (no pages pushed into freed ranges)",
    "a process that munmaps during lazy migration could get stray pages mapped: use --mode precopy"),
  uffdBit("MISSING_SHMEM", true, "shared anonymous memory is restored lazily too", "shared memory must arrive before the process resumes",
    shmemExercise, UFFD_FEATURE.SIGBUS),
  uffdBit("THREAD_ID", false, "fault reports name the faulting thread (per-thread fault latency in reports)",
    "fault statistics cannot say which thread waited"),
  uffdBit("WP_ASYNC", true, "pre-copy and hybrid migration track dirty pages without soft-dirty",
    "no pre-copy or hybrid migration: only lazy or stop-and-copy", dirtyExercise(true)),
  uffdBit("WP_UNPOPULATED", true, "dirty tracking also sees first writes to never-touched pages",
    "pre-copy could miss pages first written between rounds", dirtyExercise(false), UFFD_FEATURE.WP_ASYNC),
  uffdBit("EXACT_ADDRESS", false, "fault addresses are exact: the lazy daemon sees access patterns precisely",
    "fault addresses are page-rounded: prefetching guesses less well"),
  uffdBit("MOVE", false, "pages received in bulk are moved into place without a second copy",
    "pages are copied into place (UFFDIO_COPY): slower bulk fill", moveExercise, UFFD_FEATURE.SIGBUS),
];

const pagemapScanProbe: Probe = {
  name: "PAGEMAP_SCAN",
  required: true,
  enables: "present and dirty pages are listed in one call per range (dump, pre-copy rounds)",
  without: "pre-copy dirty tracking is impossible and dumps walk /proc/PID/pagemap entry by entry",
  run() {
    return withPages(8, (m) =>
      withPagemap((pm) => {
        m.write(0, Buffer.alloc(2 * PAGE_SIZE, 1));
        m.write(5 * PAGE_SIZE, Buffer.from("x"));
        const { regions, walkEnd } = pagemapScan(pm, m.addr, m.addr + m.len, { categoryMask: PAGE_IS.PRESENT });
        const got = pagesOf(m, regions);
        if (got !== "[0,2) [5,6)" || walkEnd !== m.addr + m.len) return missing(`touched pages 0,1,5 of 8; the scan found ${got || "none"}`);
        return ok("touched pages 0, 1 and 5 of 8; one scan found exactly [0,2) and [5,6)");
      }),
    );
  },
};

const softDirtyProbe: Probe = {
  name: "soft-dirty",
  required: false,
  enables: "available, but ferry does not need it (it tracks dirty pages with userfaultfd WP_ASYNC)",
  without: "nothing lost: ferry tracks dirty pages with userfaultfd WP_ASYNC (CRIU's pre-copy needs soft-dirty and cannot run here)",
  run() {
    return withPages(1, (m) =>
      withPagemap((pm) => {
        m.write(0, Buffer.from("x"));
        const entry = readPagemap(pm, m.addr, m.addr + PAGE_SIZE)[0];
        if ((entry & PM.SOFT_DIRTY) === 0n) return missing("a freshly written page is not soft-dirty in /proc/self/pagemap (CONFIG_MEM_SOFT_DIRTY is off)");
        return ok("a freshly written page is soft-dirty in /proc/self/pagemap");
      }),
    );
  },
};

export const memoryProbes: Probe[] = [userfaultfdProbe, ...uffdBitProbes, pagemapScanProbe, softDirtyProbe];
