/**
 * The victim zoo: small C programs (test/victims/NAME.c) that each set up one piece of
 * process state, wait to be checkpointed, and check that state themselves on SIGTERM.
 *
 *   const v = await startVictim("pipe");          // built if needed, waits for RESULTFILE.ready
 *   ... dump, kill and restore v.pid with ferry ...
 *   assert.equal(await finishVictim(v.pid, v.resultFile), "PASS");
 *   await cleanupVictim(v);
 *
 * The protocol the programs follow is described in test/victims/victim.h.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/** The project root, found from this file's compiled location (dist/test/harness/). */
export const PROJECT_ROOT = fileURLToPath(new URL("../../..", import.meta.url));
export const VICTIM_SOURCES = path.join(PROJECT_ROOT, "test/victims");
export const VICTIM_BUILD_DIR = path.join(PROJECT_ROOT, "test/.build");
export const VICTIM_CFLAGS: readonly string[] = ["-O1", "-g", "-Wall", "-Werror", "-D_GNU_SOURCE"];

/** What a victim checks and anything special it needs. */
export interface VictimSpec {
  /** test/victims/NAME.c, built into test/.build/NAME */
  readonly name: string;
  /** what it checks after restore, in one line */
  readonly checks: string;
  /** arguments after RESULTFILE (startVictim passes them unless given others) */
  readonly args?: readonly string[];
  /** environment variables it must be started with (startVictim always adds them) */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * It chroots into its temp dir (the directory of RESULTFILE) and from then on writes
   * "/result.ready" and "/result" inside it: the harness still finds them at v.resultFile.
   * Its root directory is that temp dir, which must exist when it is restored.
   */
  readonly chrootsIntoDir?: boolean;
  /** It drops root: after setup it runs with uids 1000/1001/1002, gids 1100/1101/1102, no capabilities. */
  readonly changesCredentials?: boolean;
  /** It is frozen inside this blocking syscall, which the restore must restart. */
  readonly blockedIn?: "read" | "nanosleep" | "poll" | "futex" | "sigsuspend";
  /**
   * The kernel restarts that syscall through restart_block (-ERESTART_RESTARTBLOCK), which does
   * not survive in a new process: a restore that turns it into a spurious EINTR fails this victim.
   */
  readonly restartBlock?: boolean;
  /** It spins on the CPU the whole time (registers are live in a loop, not saved on a stack). */
  readonly spins?: boolean;
}

/** The zoo. Every victim must PASS when simply started and stopped (test/victims.test.ts). */
export const VICTIM_SPECS: readonly VictimSpec[] = [
  // memory
  { name: "anon_private", checks: "8 MiB private anonymous memory, a distinct pattern per page, untouched and zeroed pages" },
  { name: "anon_shared", checks: "4 MiB MAP_SHARED|MAP_ANONYMOUS with a pattern and an mremap alias that must stay the same object" },
  { name: "file_private", checks: "MAP_PRIVATE file mapping at an offset with COW-modified pages; the file is unchanged" },
  { name: "file_shared", checks: "MAP_SHARED file mapping: read() of the file equals the mapping, writes still reach the file" },
  { name: "heap", checks: "sbrk-grown heap with a pattern; sbrk(0) unchanged, [heap] named, break still grows and shrinks" },
  { name: "stack", checks: "1500 nested frames with patterns; [stack] and a grown MAP_GROWSDOWN mapping keep content, gd flag, and still grow" },
  { name: "guard_pages", checks: "PROT_NONE pages between rw pages: still ---p and fault with SEGV_ACCERR; rw pages intact" },
  { name: "mprotect", checks: "one mapping split rw/r--/rw by mprotect: perms, exact read-only bounds, content, write faults" },
  { name: "vdso", checks: "[vdso] at AT_SYSINFO_EHDR with the same code; vDSO clocks move, are monotonic and agree with syscalls" },
  { name: "memfd", checks: "sealed memfd (F_SEAL_SHRINK) kept as fd and MAP_SHARED mapping of one object; content and seals" },
  { name: "sysv_shm", checks: "System V segments: a keyed one attached twice, a private one marked IPC_RMID: ids, addresses, content, SHM_DEST" },
  { name: "sparse", checks: "1 GiB MAP_NORESERVE mapping with one written page per 64 MiB: content, zeros, nh flag, small Rss" },
  // registers and CPU state
  { name: "regs_gp", checks: "known values in rbx, rcx, rdx, rsi, rdi, r8-r15 in a spin loop; fs/gs base and TLS", spins: true },
  { name: "regs_fpu", checks: "known values in xmm0-13 (ymm0-13 with AVX) in a spin loop; x87 control word and MXCSR", spins: true },
  { name: "rseq", checks: "glibc's rseq registration still active (same area, length, signature) and cpu_id kept up to date" },
  // signals and timers
  { name: "sigactions", checks: "all 64 sigactions (handler, flags, restorer, mask), sigaltstack, and handler behaviour" },
  { name: "sigmask", checks: "blocked signal mask (sigprocmask and SigBlk); a blocked signal stays pending" },
  { name: "sigsuspend", checks: "blocked in sigsuspend with a temporary mask: real mask restored after it returns EINTR", blockedIn: "sigsuspend" },
  { name: "sigpending", checks: "queued signals with values, thread-private vs shared, realtime order, nothing extra" },
  { name: "itimers", checks: "ITIMER_REAL 50 ms keeps ticking; ITIMER_VIRTUAL and ITIMER_PROF intervals and values" },
  { name: "posix_timers", checks: "three POSIX timers: same ids, intervals, remaining times, signals with value and timer id" },
  // process attributes
  { name: "rlimits", checks: "all 16 rlimits after lowering NOFILE (soft and hard), STACK and CORE" },
  { name: "creds", checks: "uids, gids, fsuid/fsgid, groups, capabilities, securebits, dumpable after dropping root", changesCredentials: true },
  { name: "cwd", checks: "cwd in a directory with spaces: getcwd, /proc/self/cwd, inode, relative open" },
  { name: "root", checks: "chroot into its temp dir: '/' is that inode, '/..' stays inside, marker readable", chrootsIntoDir: true },
  { name: "prctl_attrs", checks: "child subreaper, parent-death signal, timer slack; the subreaper still adopts an orphan" },
  { name: "umask", checks: "umask 035 via umask() and /proc/self/status; new file mode" },
  { name: "personality", checks: "personality with ADDR_NO_RANDOMIZE via personality() and /proc/self/personality" },
  {
    name: "mm_fields",
    checks: "cmdline = argv, environ, exe, comm, auxv (AT_ENTRY = _start), start_code..env_end of /proc/self/stat",
    args: ["--alpha", "beta gamma", "δέλτα"],
    env: { FERRY_VICTIM_MM: "marker-2718" },
  },
  // files and fds
  { name: "files", checks: "regular file fds: paths, flags, FD_CLOEXEC, offsets, a dup sharing its offset, O_APPEND, a directory fd" },
  { name: "deleted_file", checks: "open fd of an unlinked file: content, nlink 0, size, offset, '(deleted)' link, name stays gone" },
  { name: "pipe", checks: "pipe with 100,000 unread bytes: one inode for both ends, size, flags, data, still connected" },
  { name: "fifo", checks: "named FIFO with unread data opened twice: the FIFO's inode, flags, data, still connected" },
  { name: "devnull", checks: "fds 0-2 and 10 on /dev/null, 11 on /dev/zero: device numbers, flags, behaviour" },
  { name: "eventfd", checks: "counter and EFD_SEMAPHORE eventfds: fdinfo counts, flags, reads" },
  { name: "signalfd", checks: "signalfd mask, pending SIGUSR2 and queued SIGRTMIN+4 with value read through it" },
  { name: "timerfd", checks: "periodic timerfd keeps expiring with exact interval; one-hour CLOCK_BOOTTIME timerfd keeps counting down" },
  { name: "procfs_self", checks: "its own /proc files held open (a pipe's fdinfo, status read part way): same process, offset, flags" },
  { name: "epoll", checks: "epoll set of 4 fds: fdinfo registrations, epoll_wait events and data.u64" },
  // threads
  { name: "threads", checks: "4 threads: TIDs, names, TLS, masks; futex wait, read, nanosleep and a busy loop carry on; pthread_join works" },
  // sockets
  { name: "tcp", checks: "listener + established loopback connection, both ends here, data queued both ways: names, queues, stream and accept carry on" },
  { name: "unix_sockets", checks: "stream/dgram/seqpacket socketpairs with data queued both ways, path and abstract listeners: data, boundaries, accept" },
  { name: "fds_in_flight", checks: "fds in flight (SCM_RIGHTS) in stream and datagram queues, their own copies closed: boundaries, each fd on its message, pipe data and ends, file offsets, a socket end with its queue" },
  { name: "udp", checks: "UDP sockets bound on 127.0.0.1, two connected to each other and one alone: names, peers, datagrams both ways" },
  { name: "netlink", checks: "netlink route socket bound to its port id and link group, a uevent socket: addresses, protocol, a route dump still answered" },
  { name: "inotify", checks: "inotify watches on a dir and a file with a gap in wds: same wds report new events, no stray IN_IGNORED" },
  // process trees
  { name: "tree", checks: "parent, 2 children, a grandchild: PIDs, parents, groups, session, a shared page, a shared offset, a pipe between them" },
  { name: "cow_tree", checks: "32 MiB private memory written before 3 forks and a grandchild, each with pages of its own, zeroed, dropped and new, and pages written after the fork: every page of every process" },
  // blocked in a syscall
  { name: "blocked_read", checks: "blocked in read() on an empty pipe: returns only -1/EINTR on SIGTERM", blockedIn: "read" },
  { name: "blocked_nanosleep", checks: "blocked in nanosleep(1000 s): EINTR only on SIGTERM, time left consistent", blockedIn: "nanosleep", restartBlock: true },
  { name: "blocked_poll", checks: "blocked in poll() without timeout: EINTR only on SIGTERM, fds still idle", blockedIn: "poll", restartBlock: true },
  { name: "blocked_futex", checks: "blocked in FUTEX_WAIT with 200 ms timeouts: only ETIMEDOUT until SIGTERM gives EINTR", blockedIn: "futex", restartBlock: true },
];

/** The names of all victims, for tests that iterate over the zoo. */
export const VICTIMS: readonly string[] = VICTIM_SPECS.map((s) => s.name);

// ------------------------------------------------------------------------------------ build

const run = promisify(execFile);
const builds = new Map<string, Promise<string>>();

function mtimeMs(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

/**
 * Compile test/victims/NAME.c into test/.build/NAME unless the binary is newer than both the
 * source and victim.h. Concurrent calls share one compilation; other processes are safe too
 * (gcc writes a private temporary that is renamed into place).
 */
export function buildVictim(name: string): Promise<string> {
  let build = builds.get(name);
  if (!build) {
    build = compile(name);
    builds.set(name, build);
    build.then(() => builds.delete(name), () => builds.delete(name));
  }
  return build;
}

async function compile(name: string): Promise<string> {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad victim name "${name}"`);
  const source = path.join(VICTIM_SOURCES, `${name}.c`);
  const binary = path.join(VICTIM_BUILD_DIR, name);
  if (mtimeMs(source) < 0) throw new Error(`no victim source ${source}`);
  const sourceTime = Math.max(mtimeMs(source), mtimeMs(path.join(VICTIM_SOURCES, "victim.h")));
  if (mtimeMs(binary) >= sourceTime) return binary;
  fs.mkdirSync(VICTIM_BUILD_DIR, { recursive: true });
  const temporary = `${binary}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await run("gcc", [...VICTIM_CFLAGS, "-o", temporary, source]);
    fs.renameSync(temporary, binary);
  } catch (e) {
    fs.rmSync(temporary, { force: true });
    const stderr = (e as { stderr?: string }).stderr ?? "";
    throw new Error(`building victim ${name} failed: ${(e as Error).message}\n${stderr}`);
  }
  return binary;
}

// -------------------------------------------------------------------------------- lifecycle

export interface Victim {
  readonly name: string;
  readonly pid: number;
  /** absolute path of RESULTFILE, where the verdict line appears */
  readonly resultFile: string;
  /** the victim's fresh temp dir under /tmp (mode 0777), holding RESULTFILE and its files */
  readonly dir: string;
  /** the process as first started (after a restore the victim is no longer this child) */
  readonly child: ChildProcess;
  /** when the first process (our child) ends */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface VictimOptions {
  /** added to the victim's environment (which is otherwise only PATH and the spec's env) */
  env?: Record<string, string>;
  /** working directory (default: the victim's temp dir) */
  cwd?: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Build (if needed) and start a victim in its own session with fds 0-2 on /dev/null, then wait
 * until it has created RESULTFILE.ready. `args` replaces the spec's arguments when given. A
 * victim outside the zoo's list (test/victims/NAME.c that one test file uses) starts the same way,
 * with no spec.
 * Node hands a child any non-CLOEXEC fd it inherited itself; the victim closes every fd above 2
 * first thing (victim_init), so it holds only what it opens.
 */
export async function startVictim(name: string, args?: string[], opts: VictimOptions = {}): Promise<Victim> {
  const spec = VICTIM_SPECS.find((s) => s.name === name);
  const binary = await buildVictim(name);
  const dir = fs.mkdtempSync(`/tmp/ferry-victim-${name}-`);
  fs.chmodSync(dir, 0o777);
  const resultFile = path.join(dir, "result");
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", ...spec?.env, ...opts.env };
  const child = spawn(binary, [resultFile, ...(args ?? spec?.args ?? [])], {
    detached: true,
    stdio: "ignore",
    env,
    cwd: opts.cwd ?? dir,
  });
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
    child.once("error", (e) => {
      spawnError = e;
      resolve({ code: null, signal: null });
    });
  });

  const readyFile = `${resultFile}.ready`;
  const deadline = Date.now() + 10_000;
  while (!fs.existsSync(readyFile)) {
    if (spawnError || exitInfo) {
      const result = readResult(resultFile) ?? "(no result file)";
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(
        `victim ${name} ended before it was ready (${spawnError?.message ?? `code ${exitInfo?.code}, signal ${exitInfo?.signal}`}): ${result}`,
      );
    }
    if (Date.now() > deadline) {
      const state = processState(child.pid);
      child.kill("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`victim ${name} (pid ${child.pid}) did not create ${readyFile} within 10 s; ${state}`);
    }
    await sleep(5);
  }
  return { name, pid: child.pid!, resultFile, dir, child, exited };
}

/** The verdict line if RESULTFILE holds a complete one. */
function readResult(resultFile: string): string | undefined {
  try {
    const text = fs.readFileSync(resultFile, "utf8");
    return text.includes("\n") ? text.trim() : undefined;
  } catch {
    return undefined;
  }
}

/** Is PID a live (not zombie) process? */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** A line describing where a process is, for error messages. */
function processState(pid: number | undefined): string {
  if (pid === undefined) return "no pid";
  const read = (f: string) => {
    try {
      return fs.readFileSync(`/proc/${pid}/${f}`, "utf8").trim();
    } catch {
      return "?";
    }
  };
  if (!fs.existsSync(`/proc/${pid}`)) return `pid ${pid} does not exist`;
  const stat = read("stat");
  const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  const status = read("status");
  const line = (key: string) => status.match(new RegExp(`^${key}:\\s*(.*)$`, "m"))?.[1] ?? "?";
  return `pid ${pid} state ${state}, wchan ${read("wchan")}, syscall ${read("syscall")}, SigPnd ${line("SigPnd")} ShdPnd ${line("ShdPnd")} SigBlk ${line("SigBlk")}, TracerPid ${line("TracerPid")}`;
}

/**
 * Send SIGTERM to the victim and return its verdict line ("PASS" or "FAIL: ...") once
 * RESULTFILE holds it. SIGTERM is repeated every 500 ms, since one that lands just before a
 * restarted syscall is re-entered would otherwise leave the victim blocked; victims ignore the
 * extras. Works whether or not the victim is our child.
 */
export async function finishVictim(pid: number, resultFile: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let lastTerm = -Infinity;
  let goneAt: number | undefined;
  for (;;) {
    const verdict = readResult(resultFile);
    if (verdict !== undefined) return verdict;
    const now = Date.now();
    if (goneAt === undefined && !alive(pid)) goneAt = now;
    if (goneAt !== undefined && now - goneAt > 300)
      throw new Error(`victim pid ${pid} is gone without writing a verdict to ${resultFile}`);
    if (goneAt === undefined && now - lastTerm >= 500) {
      try {
        process.kill(pid, "SIGTERM");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
      }
      lastTerm = now;
    }
    if (now > deadline)
      throw new Error(`victim pid ${pid} wrote no verdict to ${resultFile} within ${timeoutMs} ms; ${processState(pid)}`);
    await sleep(5);
  }
}

/** Is PID still the victim that writes RESULTFILE (and not a process that reused its PID)? */
export function isVictim(pid: number, resultFile: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[1] === resultFile;
  } catch {
    return false;
  }
}

/** Kill the victim if it still runs (whoever its parent is now) and remove its temp dir. */
export async function cleanupVictim(v: Victim): Promise<void> {
  if (alive(v.pid) && isVictim(v.pid, v.resultFile)) {
    try {
      process.kill(v.pid, "SIGKILL");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
    }
    const until = Date.now() + 5_000;
    while (alive(v.pid) && Date.now() < until) await sleep(5);
  }
  fs.rmSync(v.dir, { recursive: true, force: true });
}
