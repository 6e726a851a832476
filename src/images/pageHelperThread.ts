import fs from "node:fs";
import { workerData, parentPort, type MessagePort } from "node:worker_threads";
import { crc32At } from "./checksum.js";
import type { PageJob, PageJobFault } from "./pageHelper.js";

/** The helper thread of pageHelper.ts: runs page jobs in order, counts them done, reports failures. */
const { done, faults } = workerData as { done: Int32Array; faults: MessagePort };
let jobs = 0;
Atomics.store(done, 1, 1); // up: see PageHelper.ready

function run(job: PageJob): void {
  if (job.kind === "verify") {
    for (const r of job.runs) {
      if (crc32At(r.at, r.len) !== r.crc32) {
        throw Object.assign(new Error(`${job.file}: checksum mismatch at offset ${r.offset} (pages at 0x${r.vaddr.toString(16)})`), { code: "FERRY_IMAGE_CORRUPT" });
      }
    }
    return;
  }
  const data = new Uint8Array(job.data, job.start, job.len);
  for (let off = 0; off < job.len;) off += fs.writeSync(job.fd, data, off, job.len - off, job.position + off);
}

parentPort!.on("message", (job: PageJob) => {
  const n = ++jobs;
  try {
    run(job);
  } catch (e) {
    const err = e as { code?: string; message?: string };
    const fault: PageJobFault = { job: n, code: err.code?.startsWith("FERRY_") ? err.code : "FERRY_IMAGE_WRITE", message: `${job.file}: ${err.message}` };
    if (err.code === "FERRY_IMAGE_CORRUPT") fault.message = err.message ?? "";
    faults.postMessage(fault);
  } finally {
    Atomics.add(done, 0, 1);
    Atomics.notify(done, 0);
  }
});
