/** TypeScript views of the messages in schema/ferry.proto (protobufjs camelCases field names). */
export interface Inventory {
  formatVersion: number;
  ferryVersion: string;
  arch: string;
  kernel: string;
  vdsoSha256: Buffer;
  vdsoSize: number;
  rootPid: number;
  pids: number[];
  createdMs: number;
  lazy: boolean;
  shellJob: boolean;
  /** lazy images: when the source was frozen (epoch µs) */
  frozenAtUs?: number;
}

export interface ThreadImage {
  tid: number;
  regs: Buffer;
  xstate: Buffer;
  sigmask: Buffer;
  pending: Buffer[];
  rseqAddress: number;
  rseqLength: number;
  rseqSignature: number;
  robustList: number;
  robustListLen: number;
  clearTidAddress: number;
  altstackSp: number;
  altstackFlags: number;
  altstackSize: number;
  comm: string;
  restartedSyscall: boolean;
}

export interface SigActionImage {
  signo: number;
  handler: number;
  flags: number;
  restorer: number;
  mask: Buffer;
}
/** A signal's action from the kernel's struct kernel_sigaction (handler, flags, restorer, mask; 32 bytes). */
export function sigActionImage(signo: number, k: Buffer): SigActionImage {
  return {
    signo,
    handler: Number(k.readBigUInt64LE(0)),
    flags: Number(k.readBigUInt64LE(8)),
    restorer: Number(k.readBigUInt64LE(16)),
    mask: Buffer.from(k.subarray(24, 32)),
  };
}
export interface ItimerImage {
  which: number;
  intervalUs: number;
  valueUs: number;
}
export interface PosixTimerImage {
  id: number;
  clockId: number;
  notify: number;
  signo: number;
  sigevValue: number;
  notifyTid: number;
  intervalNs: number;
  valueNs: number;
  overrun: number;
}
export interface RlimitImage {
  resource: number;
  cur: Buffer;
  max: Buffer;
}
export interface CredsImage {
  uid: number[];
  gid: number[];
  groups: number[];
}

export interface CoreImage {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  comm: string;
  threads: ThreadImage[];
  sigactions: SigActionImage[];
  pendingShared: Buffer[];
  itimers: ItimerImage[];
  posixTimers: PosixTimerImage[];
  rlimits: RlimitImage[];
  creds: CredsImage;
  cwd: string;
  root: string;
  umask: number;
  personality: number;
  sessionLeader: boolean;
  timerSlackNs: number;
  pdeathSignal: number;
  noNewPrivs: boolean;
  dumpable: number;
  childSubreaper: boolean;
  zombie?: boolean;
  exitStatus?: number;
}

export type VmaKind = "anon" | "file" | "shmem" | "memfd" | "vdso" | "vvar" | "sysv";
export interface VmaImage {
  start: number;
  end: number;
  prot: number;
  shared: boolean;
  kind: VmaKind;
  path: string;
  pgoff: number;
  fileId: number;
  vmflags: string[];
  hasPages: boolean;
  inode: number;
  shmKey?: number;
  shmSize?: number;
  shmMode?: number;
  /** lazy images: the content comes from the page server (but pages listed in the pagemap's runs) */
  lazy?: boolean;
}

export interface MmImage {
  startCode: number;
  endCode: number;
  startData: number;
  endData: number;
  startBrk: number;
  brk: number;
  startStack: number;
  argStart: number;
  argEnd: number;
  envStart: number;
  envEnd: number;
  auxv: Buffer;
  exePath: string;
  vmas: VmaImage[];
}

export interface PageRunImage {
  vaddr: number;
  nrPages: number;
  offset: number;
  crc32: number;
}
export interface LazyRunImage {
  vaddr: number;
  nrPages: number;
}
export interface PageMapImage {
  runs: PageRunImage[];
  totalPages: number;
  zeroPagesSkipped: number;
  /** lazy images: the pages the page server holds */
  lazyRuns?: LazyRunImage[];
  lazyPages?: number;
  /** pages the process shares with its parent since fork (same frame at dump): its parent's copy is restored */
  inheritedRuns?: LazyRunImage[];
}

export interface FdImage {
  fd: number;
  fileId: number;
  cloexec: boolean;
}
export interface FdTableImage {
  fds: FdImage[];
}

export interface EpollTargetImage {
  fd: number;
  events: number;
  data: number;
}
export interface FileObjectImage {
  id: number;
  kind: string;
  path: string;
  flags: number;
  pos: number;
  mode: number;
  inode: number;
  size: number;
  deleted: boolean;
  data: Buffer;
  blob: string;
  blobCrc32: number;
  seals: number;
  pipeSize: number;
  pipeWriteEnd: boolean;
  counter: number;
  semaphore: boolean;
  sigmask: Buffer;
  clockId: number;
  intervalNs: number;
  valueNs: number;
  ticks: number;
  settimeFlags: number;
  targets: EpollTargetImage[];
  name: string;
  rdev: number;
  socket?: SocketImage | null;
  watches?: InotifyWatchImage[];
}

export interface InotifyWatchImage {
  wd: number;
  mask: number;
  path: string;
}

export interface SocketImage {
  family: number;
  type: number;
  protocol: number;
  state: number;
  local: Buffer;
  peer: Buffer;
  backlog: number;
  sndSeq: number;
  rcvSeq: number;
  sendQueue: Buffer;
  recvQueue: Buffer;
  mss: number;
  sndWscale: number;
  rcvWscale: number;
  tcpiOptions: number;
  timestamp: number;
  window: Buffer;
  nodelay: boolean;
  keepalive: boolean;
  reuseaddr: boolean;
  peerInode: number;
  messages: Buffer[];
  shutdownRd: boolean;
  shutdownWr: boolean;
  inFlight: FilesInFlightImage[];
}
export interface FilesInFlightImage {
  message: number;
  fileIds: number[];
}
export interface FilesImage {
  files: FileObjectImage[];
}

export function u64le(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, v));
  return b;
}
export function readU64le(b: Buffer | undefined): bigint {
  return b && b.length >= 8 ? b.readBigUInt64LE(0) : 0n;
}
