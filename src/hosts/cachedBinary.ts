import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FerryError } from "../errors.js";

/**
 * Compile a small C program once per machine: the binary lives in the temporary directory under
 * `stem` and the hash of its source, so a changed source gets a new binary. Written under a name of
 * this process, then renamed: concurrent callers never run half a binary. Needs gcc; when it fails,
 * a FerryError of `code` saying which program (`what`) and gcc's message.
 */
export function cachedBinary(source: string, stem: string, optimize: "-O1" | "-O2", code: string, what: string): string {
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 12);
  const bin = path.join(os.tmpdir(), `${stem}-${hash}`);
  if (fs.existsSync(bin)) return bin;
  const src = `${bin}.c`;
  fs.writeFileSync(src, source);
  const tmp = `${bin}.tmp-${process.pid}`;
  try {
    execFileSync("gcc", [optimize, "-o", tmp, src], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    throw new FerryError(code, `cannot compile ${what} with gcc: ${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim()}`);
  } finally {
    fs.rmSync(src, { force: true });
  }
  fs.renameSync(tmp, bin);
  return bin;
}
