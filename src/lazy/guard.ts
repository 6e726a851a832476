import fs from "node:fs";
import { spawn } from "node:child_process";
import { NR, O, sys } from "../kernel/sys.js";
import { msghdr, rightsControl } from "./handoff.js";

/**
 * A tiny shell process outside ferry that reads the lines ferry writes to a pipe. Ferry is the
 * pipe's only writer (its end is close-on-exec), so the pipe closing means ferry is gone,
 * whatever killed it; the script then does what must happen without ferry. Lines are written
 * synchronously: none is left in a stream's buffer when ferry dies right after.
 */
export class Watchdog {
  private constructor(private fd: number) {}

  /** Run `script` with `args` as $1...; `fds` become its fds 3, 4, ... */
  static start(name: string, script: string, args: string[], fds: number[] = []): Watchdog {
    const ends = new Int32Array(2);
    sys("pipe2", NR.pipe2, ends, O.CLOEXEC);
    const [readEnd, writeEnd] = ends;
    try {
      const child = spawn("/bin/sh", ["-c", script, name, ...args], {
        stdio: [readEnd, "ignore", "ignore", ...fds],
        detached: true, // its own process group: a Ctrl-C meant for ferry must not end it
      });
      child.on("error", () => {});
      child.unref();
    } catch (e) {
      fs.closeSync(writeEnd);
      throw e;
    } finally {
      fs.closeSync(readEnd);
    }
    return new Watchdog(writeEnd);
  }

  say(line: string): void {
    if (this.fd >= 0) fs.writeSync(this.fd, line + "\n");
  }

  /** Say a last line and let go (the script reads EOF next). */
  close(line?: string): void {
    if (this.fd < 0) return;
    try {
      if (line) this.say(line);
    } finally {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }
}

const AF_UNIX = 1, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0o2000000;

/**
 * If the daemon died while pages are missing, the kernel would release the userfaultfd and fill
 * every missing page with zeros at the next touch: the process would run on lost memory (what
 * CRIU does when its lazy-pages daemon dies). The guard prevents that: a watchdog holding a
 * reference to the uffd. It is started before the restore (spawning takes milliseconds, which
 * the downtime must not pay); the uffd reaches it the moment the daemon adopts the process, as
 * a message with SCM_RIGHTS queued on a socket the guard holds (it never reads it: the queued
 * message keeps the uffd open). Armed, the guard SIGKILLs the process when ferry goes away
 * without "done", and only then, exiting, lets go of the uffd. A process with a pending SIGKILL
 * never returns to user space, so nothing runs on zeros.
 */
export class UffdGuard {
  private constructor(private readonly dog: Watchdog, private sock: number) {}

  /** Ready to guard process `pid` (not armed: it does nothing until `hold`). */
  static prepare(pid: number): UffdGuard {
    const pair = new Int32Array(2);
    sys("socketpair", NR.socketpair, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair);
    try {
      const dog = Watchdog.start("ferry-uffd-guard", 'read -r x && [ "$x" = armed ] || exit 0; read -r x; [ "$x" = done ] || kill -9 "$1"', [String(pid)], [pair[1]]);
      return new UffdGuard(dog, pair[0]);
    } catch (e) {
      fs.closeSync(pair[0]);
      throw e;
    } finally {
      fs.closeSync(pair[1]);
    }
  }

  /** Hand the guard its reference to the uffd, then arm it. */
  hold(uffd: number): void {
    if (this.sock < 0) return;
    const data = Buffer.from("uffd");
    const control = rightsControl(uffd);
    try {
      sys("sendmsg(userfaultfd to its guard)", NR.sendmsg, this.sock, msghdr(data, control), 0, data, control);
    } finally {
      fs.closeSync(this.sock);
      this.sock = -1;
    }
    this.dog.say("armed");
  }

  /** The transfer is over (complete, or the process killed by us): stand down. */
  release(): void {
    if (this.sock >= 0) fs.closeSync(this.sock);
    this.sock = -1;
    this.dog.close("done");
  }
}
