import fs from "node:fs";
import crypto from "node:crypto";
import { native } from "../native.js";
import { NR, O, PAGE_SIZE, sys, errnoName } from "../sys.js";
import { PTRACE, PTRACE_EVENT_STOP, PTRACE_O, ptrace, waitStop, getRegs } from "../ptrace.js";
import { vmRead } from "../mem.js";
import { readStat, statField } from "../procfs.js";
import { Injector } from "../inject.js";
import { type Probe, ok, missing, withStub, killAndReap } from "./probe.js";

/* Probes of what ferry does to other processes: trace them, build them, read them. */

const ptraceProbe: Probe = {
  name: "ptrace",
  required: true,
  enables: "ferry can freeze a running process and read its registers (dump, migrate)",
  without: "ferry cannot freeze processes: no dump, restore or migration is possible",
  run() {
    return withStub((pid) => {
      // The stub started under TRACEME; let it go and take it again the way dump does.
      ptrace(PTRACE.DETACH, pid, 0, 0);
      const t0 = process.hrtime.bigint();
      ptrace(PTRACE.SEIZE, pid, 0, PTRACE_O.TRACESYSGOOD | PTRACE_O.EXITKILL);
      ptrace(PTRACE.INTERRUPT, pid, 0, 0);
      const st = waitStop(pid);
      const us = Number(process.hrtime.bigint() - t0) / 1000;
      if (st.event !== PTRACE_EVENT_STOP) return missing(`PTRACE_INTERRUPT gave stop ${st.stopSig}/event ${st.event}, not a PTRACE_EVENT_STOP`);
      const rip = getRegs(pid).get("rip");
      return ok(`PTRACE_SEIZE + INTERRUPT froze a child in ${us.toFixed(0)} µs; GETREGS read rip 0x${rip.toString(16)}`);
    });
  },
};

/** A PID that is free now, in the upper half of pid_max (far from where new PIDs are handed out). */
function freePid(): number {
  const pidMax = Number(fs.readFileSync("/proc/sys/kernel/pid_max", "utf8"));
  for (let i = 0; i < 1000; i++) {
    const pid = Math.floor(pidMax / 2 + Math.random() * (pidMax / 2 - 1));
    if (!fs.existsSync(`/proc/${pid}`)) return pid;
  }
  throw new Error("no free PID found in the upper half of pid_max");
}

const clone3Probe: Probe = {
  name: "clone3 set_tid",
  required: true,
  enables: "restored processes get back their original PID",
  without: "restore cannot recreate a process with its PID: restore is impossible (needs root or CAP_CHECKPOINT_RESTORE)",
  run() {
    for (let attempt = 0; ; attempt++) {
      const want = freePid();
      const pid = native.spawnStub([want], 0);
      if (pid === -17 /* EEXIST: taken since we looked */ && attempt < 5) continue;
      if (pid < 0) return missing(`clone3 with set_tid=${want}: ${errnoName(-pid)}`);
      try {
        waitStop(pid);
      } finally {
        killAndReap(pid);
      }
      if (pid !== want) return missing(`clone3 with set_tid=${want} created PID ${pid}`);
      return ok(`clone3 created a child with the chosen free PID ${want}`);
    }
  },
};

const injectionProbe: Probe = {
  name: "syscall injection",
  required: true,
  enables: "ferry runs system calls inside a stopped process (restore needs no parasite code)",
  without: "ferry cannot act inside processes: restore and the dump of signal handlers and timers fail",
  run() {
    return withStub((pid) => {
      const inj = Injector.forTask(pid);
      const got = inj.ok("getpid", NR.getpid);
      if (got !== pid) return missing(`injected getpid() returned ${got} in PID ${pid}`);
      return ok(`getpid() run inside a traced child (at its vDSO's syscall instruction) returned the child's PID`);
    });
  },
};

const vmReadProbe: Probe = {
  name: "process_vm_readv",
  required: true,
  enables: "memory is dumped and served to lazy restores at memcpy speed",
  without: "ferry cannot read process memory: dump and the lazy page server fail",
  run() {
    const marker = Buffer.alloc(256);
    crypto.randomFillSync(marker);
    const before = Buffer.from(marker);
    return withStub((pid) => {
      crypto.randomFillSync(marker); // ours changes; the child keeps the copy it was born with
      const got = Buffer.alloc(marker.length);
      const n = vmRead(pid, got, [{ addr: Number(native.addressOf(marker)), len: marker.length }]);
      if (n !== marker.length || !got.equals(before)) return missing(`read ${n} bytes from a child, not the ones it holds`);
      return ok(`read ${n} bytes from a child's memory, as the child holds them`);
    });
  },
};

const pidfdGetfdProbe: Probe = {
  name: "pidfd_getfd",
  required: true,
  enables: "ferry takes copies of a process's files and sockets without code inside it",
  without: "open files, pipes and sockets of a process cannot be dumped (and lazy restore cannot take its userfaultfd)",
  run() {
    const fds = Buffer.alloc(8);
    sys("pipe2", NR.pipe2, fds, O.CLOEXEC | O.NONBLOCK);
    const [rfd, wfd] = [fds.readInt32LE(0), fds.readInt32LE(4)];
    let ourWfdOpen = true;
    let pidfd = -1;
    let got = -1;
    try {
      return withStub((pid) => {
        fs.closeSync(wfd); // now only the child holds the pipe's write end
        ourWfdOpen = false;
        pidfd = sys("pidfd_open", NR.pidfd_open, pid, 0);
        got = sys(`pidfd_getfd(${pid}, ${wfd})`, NR.pidfd_getfd, pidfd, wfd, 0);
        fs.writeSync(got, "ferry");
        const b = Buffer.alloc(16);
        const n = fs.readSync(rfd, b, 0, b.length, null);
        if (b.subarray(0, n).toString() !== "ferry") return missing("the fd taken from the child is not its pipe");
        return ok(`pidfd_open + pidfd_getfd took fd ${wfd} of a child: its pipe, as the child has it`);
      });
    } finally {
      for (const fd of [got, pidfd, rfd, ourWfdOpen ? wfd : -1]) if (fd >= 0) fs.closeSync(fd);
    }
  },
};

const PR_SET_MM = 35;
const PR_SET_MM_MAP = 14;
const PR_SET_MM_MAP_SIZE = 15;
/** struct prctl_mm_map: 11 u64 addresses, u64 auxv pointer, u32 auxv_size, u32 exe_fd. */
const PRCTL_MM_MAP_SIZE = 104;

const setMmMapProbe: Probe = {
  name: "PR_SET_MM_MAP",
  required: true,
  enables: "restore sets a process's code/data/brk/stack/args/env/auxv in one call, without CAP_SYS_RESOURCE",
  without: "restored processes would keep wrong brk, /proc/PID/cmdline and auxv (kernel built without CONFIG_CHECKPOINT_RESTORE?)",
  run() {
    return withStub((pid) => {
      const inj = Injector.forTask(pid);
      const scratch = inj.mapScratch(PAGE_SIZE);
      inj.ok("prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE)", NR.prctl, PR_SET_MM, PR_SET_MM_MAP_SIZE, scratch, 0, 0);
      const size = inj.get(0, 4).readUInt32LE(0);
      if (size !== PRCTL_MM_MAP_SIZE) return missing(`struct prctl_mm_map is ${size} bytes here, ferry knows the ${PRCTL_MM_MAP_SIZE}-byte one`);
      // Set the child's own values back, as restore sets the image's.
      const st = readStat(pid);
      const f = (n: number) => BigInt(statField(st, n));
      const brk = BigInt(inj.ok("brk(0)", NR.brk, 0));
      const auxv = fs.readFileSync(`/proc/${pid}/auxv`);
      const map = Buffer.alloc(PRCTL_MM_MAP_SIZE);
      // start_code end_code start_data end_data start_brk brk start_stack arg_start arg_end env_start env_end
      [f(26), f(27), f(45), f(46), f(47), brk, f(28), f(48), f(49), f(50), f(51)].forEach((v, i) => map.writeBigUInt64LE(v, i * 8));
      map.writeBigUInt64LE(BigInt(inj.put(1024, auxv)), 88);
      map.writeUInt32LE(auxv.length, 96);
      map.writeInt32LE(-1, 100); // exe_fd: keep /proc/PID/exe
      inj.ok("prctl(PR_SET_MM, PR_SET_MM_MAP)", NR.prctl, PR_SET_MM, PR_SET_MM_MAP, inj.put(0, map), map.length, 0);
      return ok(`PR_SET_MM_MAP_SIZE says ${size} bytes; PR_SET_MM_MAP accepted a child's own layout (brk 0x${brk.toString(16)})`);
    });
  },
};

export const processProbes: Probe[] = [ptraceProbe, clone3Probe, injectionProbe, vmReadProbe, pidfdGetfdProbe, setMmMapProbe];
