import { NR, MAP, PROT, PAGE_SIZE } from "./sys.js";
import { PTRACE, Regs, getRegs, setRegs, ptrace, waitStop } from "./ptrace.js";
import { readMem, writeMem, peekMem } from "./mem.js";
import { readMaps, type Vma } from "./procfs.js";
import { FerryError } from "../errors.js";
import { SyscallError } from "./sys.js";

const SYSCALL_INSN = Buffer.from([0x0f, 0x05]);

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
  scratchSize = 0;
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
    if (r < 0n && r > -4096n) throw new SyscallError(`${what} inside process ${this.pid}`, Number(-r));
    return Number(r);
  }

  private step(): void {
    ptrace(PTRACE.SYSCALL, this.pid, 0, 0);
    for (;;) {
      const st = waitStop(this.pid);
      if (st.stopSig & 0x80) return;
      // A ptrace event (clone of a thread with PTRACE_O_TRACECLONE) stops before syscall exit.
      if (st.event && st.stopSig === 5 /* SIGTRAP */) {
        ptrace(PTRACE.SYSCALL, this.pid, 0, 0);
        continue;
      }
      throw new FerryError("FERRY_INJECT", `process ${this.pid} stopped with signal ${st.stopSig} while ferry ran a system call inside it`);
    }
  }

  /** Another thread of the same process: same syscall site and scratch area. */
  forThread(tid: number): Injector {
    const t = new Injector(tid, this.site);
    t.scratch = this.scratch;
    t.scratchSize = this.scratchSize;
    return t;
  }

  /** Map `size` bytes of scratch memory in the task (for structs, paths, out-parameters). */
  mapScratch(size: number, hint = 0): number {
    const flags = MAP.PRIVATE | MAP.ANONYMOUS | (hint ? MAP.FIXED_NOREPLACE : 0);
    this.scratch = this.ok("mmap scratch", NR.mmap, hint, size, PROT.READ | PROT.WRITE, flags, -1, 0);
    this.scratchSize = size;
    return this.scratch;
  }
  unmapScratch(): void {
    if (this.scratch) this.ok("munmap scratch", NR.munmap, this.scratch, this.scratchSize);
    this.scratch = 0;
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
