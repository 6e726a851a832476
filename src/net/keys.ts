import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { FerryError } from "../errors.js";

/**
 * ferry's pre-shared key: 32 random bytes, kept as 64 hex digits on one line in a file only its
 * owner may read. Both hosts of a migration hold the same file (`ferry keygen`, then copy it).
 */
export const KEY_BYTES = 32;
const KEY_FILE_MODE = 0o600;
const KEY_DIR_MODE = 0o700;

/** $FERRY_KEY, else ~/.config/ferry/key. */
export function defaultKeyFile(): string {
  return process.env.FERRY_KEY || path.join(os.homedir(), ".config", "ferry", "key");
}

export interface PreSharedKey {
  file: string;
  key: Buffer;
  /** a short public name of the key (not the key): peers with different keys are told apart by it */
  id: string;
}

function keyId(key: Buffer): string {
  return createHash("sha256").update("ferry key id\0").update(key).digest("hex").slice(0, 16);
}

/** `ferry keygen`: a new key in `file` (mode 0600, its directory 0700); never overwrites one. */
export function generateKeyFile(file = defaultKeyFile()): PreSharedKey {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: KEY_DIR_MODE });
  const key = randomBytes(KEY_BYTES);
  try {
    fs.writeFileSync(file, key.toString("hex") + "\n", { mode: KEY_FILE_MODE, flag: "wx" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") {
      throw new FerryError("FERRY_KEY_EXISTS", `${file} already exists: remove it first to replace the key (both hosts must then get the new one)`);
    }
    throw new FerryError("FERRY_KEY_WRITE", `cannot write the key to ${file}: ${(e as Error).message}`);
  }
  return { file, key, id: keyId(key) };
}

/** Read and check a key file: 64 hex digits, readable by its owner only. */
export function loadKeyFile(file = defaultKeyFile()): PreSharedKey {
  let text: string;
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
    text = fs.readFileSync(file, "utf8");
  } catch {
    throw new FerryError("FERRY_NO_KEY", `no key at ${file}: run \`ferry keygen\` on one host and copy the file to the other (same path, or --key FILE / $FERRY_KEY); --insecure for plain TCP on loopback`);
  }
  if (st.mode & 0o077) {
    throw new FerryError("FERRY_KEY_MODE", `${file} can be read by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 ${file}`);
  }
  const hex = text.trim();
  if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== KEY_BYTES * 2) {
    throw new FerryError("FERRY_BAD_KEY", `${file} is not a ferry key (expected ${KEY_BYTES * 2} hex digits, as \`ferry keygen\` writes)`);
  }
  const key = Buffer.from(hex, "hex");
  return { file, key, id: keyId(key) };
}
