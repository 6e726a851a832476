import { NR, MAP, PROT, PAGE_SIZE, SIG } from "./sys.js";
import { PTRACE, Regs, getRegs, setRegs, ptrace, waitStop, type WaitStatus } from "./ptrace.js";
import { readMem, writeMem, peekMem } from "./mem.js";
import { readMaps, type Vma } from "./procfs.js";
import { FerryError } from "../errors.js";
import { SyscallError } from "./sys.js";

const SYSCALL_INSN = Buffer.from([0x0f, 0x05]);

/**
 * The batch runner: x86_64 code put at the start of the batch area. rbx points at a table of
 * 64-byte entries {nr, six arguments, result}, r12 holds how many: each entry's system call runs
 * in turn and its result is stored in place, then int3 hands the task back to ferry. One ptrace
 * round trip for the whole table instead of two stops per call (65–110 µs each here).
 *
 *   0: mov rax,[rbx]      3: mov rdi,[rbx+8]    7: mov rsi,[rbx+16]   b: mov rdx,[rbx+24]
 *   f: mov r10,[rbx+32]  13: mov r8,[rbx+40]   17: mov r9,[rbx+48]   1b: syscall
 *  1d: mov [rbx+56],rax  21: add rbx,64        25: dec r12           28: jnz 0        2a: int3
 */
const BATCH_CODE = Buffer.from(
  "488b03488b7b08488b7310488b53184c8b53204c8b43284c8b4b300f05488943384883c34049ffcc75d6cc", "hex");
const ENTRY = 64;
/** After the scratch area: one page of code, a table of entries, then the calls' own data. */
const BATCH_TABLE = PAGE_SIZE;
const BATCH_DATA = 3 * PAGE_SIZE;
export const BATCH_AREA = 16 * PAGE_SIZE;
const BATCH_ENTRIES = (BATCH_DATA - BATCH_TABLE) / ENTRY;

/** The [vvar]... [vdso] block of a process: the kernel's special mappings, moved as one. */
export function vdsoBlock(vmas: Vma[]): Vma[] {
  return vmas.filter((v) => v.path === "[vdso]" || v.path.startsWith("[vvar"));
}

/** Offset of a `syscall` instruction inside a vDSO image (its fallback paths have several). */
export function findSyscallInsn(vdso: Buffer): number {
  // Take an aligned-looking hit that is followed by a `ret` or more code; any real syscall
  // instruction works since we stop at syscall exit and never run what follows.
  const off = vdso.indexOf(SYSCALL_INSN);
  if (off < 0) throw new FerryError("FERRY_NO_SYSCALL_SITE", "the vDSO has no syscall instruction: ferry cannot inject system calls on this kernel");
  return off;
}

/**
 * Runs system calls inside a stopped, traced task: point its IP at a `syscall` instruction of its
 * vDSO, set the arguments, run to the syscall exit stop, read rax. The caller owns the task's real
 * registers and puts them back itself (restore() does it at the very end).
 */
export class Injector {
  private template: Regs;
  site: number;
  scratch = 0;
  /** the part of the scratch area the callers use (put/get); the batch area follows it */
  scratchSize = 0;
  /** whether the batch area may run code (a task under memory-deny-write-execute refuses it) */
  batchRuns = false;
  count = 0;

  constructor(readonly pid: number, site: number, template?: Regs) {
    this.site = site;
    this.template = template ?? getRegs(pid);
  }

  static forTask(pid: number, vmas = readMaps(pid)): Injector {
    const vdso = vmas.find((v) => v.path === "[vdso]");
    if (!vdso) throw new FerryError("FERRY_NO_VDSO", `process ${pid} has no vDSO: ferry needs it to run system calls inside the process`);
    const image = peekMem(pid, vdso.start, vdso.end - vdso.start);
    return new Injector(pid, vdso.start + findSyscallInsn(image));
  }

  /** Raw result (negative errno on failure). */
  call(nr: number, ...args: (number | bigint)[]): bigint {
    const r = this.template.clone();
    r.set("rip", this.site);
    r.set("rax", nr);
    r.set("orig_rax", -1);
    const names = ["rdi", "rsi", "rdx", "r10", "r8", "r9"] as const;
    args.forEach((a, i) => r.set(names[i], a));
    setRegs(this.pid, r);
    this.step(); // syscall entry
    this.step(); // syscall exit
    this.count++;
    return getRegs(this.pid).sget("rax");
  }

  /** Run a system call and throw a clear error when it fails. */
  ok(what: string, nr: number, ...args: (number | bigint)[]): number {
    const r = this.call(nr, ...args);
    throwIfFailed(r, () => new SyscallError(`${what} inside process ${this.pid}`, Number(-r)));
    return Number(r);
  }

  private step(): void {
    this.resumeUntil(PTRACE.SYSCALL, (st) => (st.stopSig & 0x80) !== 0, "a system call");
  }

  /**
   * Resume the task with `req` until a stop `arrived` accepts. A ptrace event (the clone of a
   * thread with PTRACE_O_TRACECLONE) on the way is passed; any other stop is an error.
   */
  private resumeUntil(req: number, arrived: (st: WaitStatus) => boolean, running: string): void {
    ptrace(req, this.pid, 0, 0);
    for (;;) {
      const st = waitStop(this.pid);
      if (arrived(st)) return;
      if (st.event && st.stopSig === SIG.TRAP) {
        ptrace(req, this.pid, 0, 0);
        continue;
      }
      throw new FerryError("FERRY_INJECT", `process ${this.pid} stopped with signal ${st.stopSig} while ferry ran ${running} inside it`);
    }
  }

  /** Another thread of the same process: same syscall site and scratch area. */
  forThread(tid: number): Injector {
    const t = new Injector(tid, this.site);
    t.scratch = this.scratch;
    t.scratchSize = this.scratchSize;
    t.batchRuns = this.batchRuns;
    return t;
  }

  /** Map `size` bytes of scratch memory in the task (for structs, paths, out-parameters), and the batch area after them. */
  mapScratch(size: number, hint = 0): number {
    const at = this.tryMapScratch(size, hint);
    if (at < 0n) throw new SyscallError("mmap scratch inside process " + this.pid, Number(-at));
    return this.scratch;
  }

  /**
   * mmap the scratch and batch areas (at `hint` exactly when given, never over a mapping): the
   * raw result. Executable where the task allows it; else batches run one call at a time.
   */
  tryMapScratch(size: number, hint = 0): bigint {
    const flags = MAP.PRIVATE | MAP.ANONYMOUS | (hint ? MAP.FIXED_NOREPLACE : 0);
    let r = this.call(NR.mmap, hint, size + BATCH_AREA, PROT.READ | PROT.WRITE | PROT.EXEC, flags, -1, 0);
    this.batchRuns = r >= 0n;
    if (r === -13n /* EACCES */ || r === -1n /* EPERM */) r = this.call(NR.mmap, hint, size + BATCH_AREA, PROT.READ | PROT.WRITE, flags, -1, 0);
    if (r < 0n) return r;
    this.scratch = Number(r);
    this.scratchSize = size;
    if (this.batchRuns) writeMem(this.pid, this.scratch + size, BATCH_CODE);
    return r;
  }

  /** The end of the scratch and batch areas (what must stay mapped while ferry injects). */
  get scratchEnd(): number {
    return this.scratch + this.scratchSize + BATCH_AREA;
  }

  unmapScratch(): void {
    if (this.scratch) this.ok("munmap scratch", NR.munmap, this.scratch, this.scratchSize + BATCH_AREA);
    this.scratch = 0;
  }

  /** A batch of system calls to run inside the task together (see SyscallBatch). */
  batch(): SyscallBatch {
    return new SyscallBatch(this);
  }

  /**
   * Run `n` entries of the table already written at `table` (runner code at `code`): one stop,
   * the int3 at its end (never delivered: the next resume says signal 0). The results are in the
   * table afterwards.
   */
  runTable(code: number, table: number, n: number): void {
    const r = this.template.clone();
    r.set("rip", code);
    r.set("rbx", table);
    r.set("r12", n);
    r.set("orig_rax", -1);
    setRegs(this.pid, r);
    this.resumeUntil(PTRACE.CONT, (st) => st.stopSig === SIG.TRAP && !st.event, "system calls");
    this.count += n;
  }

  /** Put bytes at scratch+off, returning their address in the task. */
  put(off: number, data: Buffer): number {
    if (off + data.length > this.scratchSize) throw new FerryError("FERRY_INJECT", "scratch area too small");
    writeMem(this.pid, this.scratch + off, data);
    return this.scratch + off;
  }
  get(off: number, len: number): Buffer {
    return readMem(this.pid, this.scratch + off, len);
  }
}

export const SCRATCH_SIZE = 16 * PAGE_SIZE;

/** A raw result that is an error (-4095..-1) becomes the error `fail` makes. */
function throwIfFailed(r: bigint, fail: () => Error): void {
  if (r < 0n && r > -4096n) throw fail();
}

interface BatchCall {
  /** null: the caller judges the result; else what names the call in its error, or makes it */
  what: string | ((errno: number) => Error) | null;
  nr: number;
  args: (number | bigint)[];
}

/** Bytes of data a batch may carry (the batch area after its table). */
const BATCH_DATA_SIZE = BATCH_AREA - BATCH_DATA;

/**
 * System calls to run inside a stopped task in one go: their arguments, and the data they read
 * or write, are laid out in the task's batch area; run() writes it all at once, runs the table
 * (one ptrace round trip), and reads the results and data back. A call added with add() must
 * succeed: run() throws for the first that failed (all of them ran: use it where a failure ends
 * the whole operation anyway, or for calls that only read). Without an executable batch area the
 * same calls run one by one.
 */
export class SyscallBatch {
  private readonly calls: BatchCall[] = [];
  /** the data laid out so far, at its offsets in the data area */
  private readonly staged: { off: number; bytes: Buffer }[] = [];
  private dataUsed = 0;
  /** the data area as the task left it (after run) */
  private back: Buffer | null = null;
  private results: bigint[] = [];

  constructor(private readonly inj: Injector) {
    if (!inj.scratch) throw new FerryError("FERRY_INJECT", "a batch of system calls needs the scratch area mapped first");
  }

  private get base(): number {
    return this.inj.scratch + this.inj.scratchSize;
  }

  /** Whether `len` more bytes of data fit in this batch. */
  fits(len: number): boolean {
    return ((this.dataUsed + 15) & ~15) + len <= BATCH_DATA_SIZE;
  }

  /** Room for `len` bytes in the task (zeroed, or a copy of `bytes`): its address there. */
  space(len: number, bytes?: Buffer): number {
    const off = (this.dataUsed + 15) & ~15;
    if (!this.fits(len)) throw new FerryError("FERRY_INJECT", "a batch of system calls outgrew its data area");
    if (bytes) this.staged.push({ off, bytes });
    this.dataUsed = off + len;
    return this.base + BATCH_DATA + off;
  }

  /** A copy of `bytes` in the task: its address there. */
  put(bytes: Buffer): number {
    return this.space(bytes.length, bytes);
  }

  /**
   * A call that must succeed; its index. `what` names it in the error (a SyscallError), or makes
   * the error from the errno.
   */
  add(what: string | ((errno: number) => Error), nr: number, ...args: (number | bigint)[]): number {
    return this.calls.push({ what, nr, args }) - 1;
  }

  /** A call whose failure is the caller's to judge (result(i)); its index. */
  try(nr: number, ...args: (number | bigint)[]): number {
    return this.calls.push({ what: null, nr, args }) - 1;
  }

  get size(): number {
    return this.calls.length;
  }

  run(): void {
    if (this.back) throw new FerryError("FERRY_INJECT", "a batch of system calls runs once");
    const inj = this.inj;
    const dataAt = this.base + BATCH_DATA;
    if (this.dataUsed) {
      const data = Buffer.alloc(this.dataUsed);
      for (const s of this.staged) s.bytes.copy(data, s.off);
      writeMem(inj.pid, dataAt, data);
    }
    if (!inj.batchRuns) {
      this.results = this.calls.map((c) => inj.call(c.nr, ...c.args));
    } else {
      for (let from = 0; from < this.calls.length; from += BATCH_ENTRIES) {
        const chunk = this.calls.slice(from, from + BATCH_ENTRIES);
        const table = Buffer.alloc(chunk.length * ENTRY);
        chunk.forEach((c, i) => {
          table.writeBigInt64LE(BigInt(c.nr), i * ENTRY);
          c.args.forEach((a, j) => table.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), i * ENTRY + 8 + j * 8));
        });
        writeMem(inj.pid, this.base + BATCH_TABLE, table);
        inj.runTable(this.base, this.base + BATCH_TABLE, chunk.length);
        const out = readMem(inj.pid, this.base + BATCH_TABLE, table.length);
        for (let i = 0; i < chunk.length; i++) this.results.push(out.readBigInt64LE(i * ENTRY + 56));
      }
    }
    this.back = this.dataUsed ? readMem(inj.pid, dataAt, this.dataUsed) : Buffer.alloc(0);
    this.calls.forEach(({ what }, i) => {
      const r = this.results[i];
      if (what === null) return;
      throwIfFailed(r, () => (typeof what === "string" ? new SyscallError(`${what} inside process ${inj.pid}`, Number(-r)) : what(Number(-r))));
    });
  }

  /** The raw result of call `i` (negative errno on failure), once run. */
  result(i: number): bigint {
    return this.results[i];
  }

  /** `len` bytes at `addr` (an address space() gave) as the task left them, once run. */
  read(addr: number, len: number): Buffer {
    const off = addr - this.base - BATCH_DATA;
    return this.back!.subarray(off, off + len);
  }
}
