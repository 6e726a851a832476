import type { Regs } from "./ptrace.js";

const ERESTARTSYS = -512n;
const ERESTARTNOINTR = -513n;
const ERESTARTNOHAND = -514n;
const ERESTART_RESTARTBLOCK = -516n;

/**
 * A task frozen inside a system call carries -ERESTART* in rax. Do what the kernel would have done
 * on its way back to user space: point IP back at the `syscall` instruction and re-enter the
 * original call. The restart block of -ERESTART_RESTARTBLOCK does not survive a dump, so that call
 * is re-entered from the start too (a relative sleep sleeps its whole time again).
 * Returns true when the registers were changed.
 */
export function applySyscallRestart(regs: Regs): boolean {
  const nr = regs.sget("orig_rax");
  if (nr < 0n) return false;
  const rax = regs.sget("rax");
  if (rax !== ERESTARTSYS && rax !== ERESTARTNOINTR && rax !== ERESTARTNOHAND && rax !== ERESTART_RESTARTBLOCK) {
    regs.set("orig_rax", -1);
    return false;
  }
  regs.set("rax", nr);
  regs.set("rip", regs.get("rip") - 2n);
  regs.set("orig_rax", -1);
  return true;
}
