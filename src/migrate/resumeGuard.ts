import { Watchdog } from "../lazy/guard.js";

/**
 * `ferry migrate` freezes the source before the switch-over. Should it die then (SIGKILL, OOM),
 * the kernel ends its ptrace hold but the process stays in its group stop, and nothing would
 * ever let it run again. The resume guard is a watchdog that, once told the process is being
 * frozen, sends it SIGCONT if ferry goes away before telling it to stand down: ferry does at the
 * point of no return (RESTORE written: the destination may run the process from then on), and
 * whenever it has decided itself. It also removes the images directory (it holds the process's
 * memory) once ferry is gone, however ferry ended.
 */
export class ResumeGuard {
  private constructor(private readonly dog: Watchdog) {}

  /** Guard process `pid`; `images`: a directory to remove at the end ("" for none). */
  static start(pid: number, images: string): ResumeGuard {
    const script = 'f=; while read -r x; do [ "$x" = frozen ] && f=1 || f=; done; [ -z "$f" ] || kill -CONT "$1"; [ -z "$2" ] || rm -rf -- "$2"';
    return new ResumeGuard(Watchdog.start("ferry-resume-guard", script, [String(pid), images]));
  }

  /** The process is about to be frozen: resume it should ferry die from now on. */
  frozen(): void {
    this.dog.say("frozen");
  }

  /** Ferry decides about the process from here. */
  standDown(): void {
    this.dog.say("stand down");
  }

  /** Ferry is done: the guard removes the images and ends. */
  close(): void {
    this.dog.close("stand down");
  }
}
