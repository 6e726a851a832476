import { spawn, type ChildProcess } from "node:child_process";

/**
 * If the daemon died while pages are missing, the kernel would release the userfaultfd and fill
 * every missing page with zeros at the next touch: the process would run on lost memory (what
 * CRIU does when its lazy-pages daemon dies). The guard prevents that: a tiny process outside
 * ferry holding a copy of the uffd. While ferry lives it waits on a pipe; when the pipe closes
 * without "done" (ferry is gone, whatever killed it) it SIGKILLs the restored process, and only
 * then, exiting, lets go of the uffd. A process with a pending SIGKILL never returns to user
 * space, so nothing runs on zeros.
 */
export class UffdGuard {
  private constructor(private readonly child: ChildProcess) {}

  static start(uffd: number, pid: number): UffdGuard {
    const child = spawn("/bin/sh", ["-c", 'read -r x; [ "$x" = done ] || kill -9 "$1"', "ferry-uffd-guard", String(pid)], {
      stdio: ["pipe", "ignore", "ignore", uffd],
      detached: true, // its own process group: a Ctrl-C meant for ferry must not end it
    });
    child.on("error", () => {});
    child.stdin!.on("error", () => {});
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    return new UffdGuard(child);
  }

  /** The transfer is over (complete, or the process killed by us): stand down. */
  release(): void {
    if (!this.child.stdin || this.child.stdin.destroyed) return;
    this.child.stdin.end("done\n");
  }
}
