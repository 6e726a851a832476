import fs from "node:fs";
import path from "node:path";
import { FerryError } from "../errors.js";
import { IMAGE_MODE } from "../images/store.js";
import type { Control } from "./control.js";
import { MAX_DATA, MCMD, parseFileHeader } from "./protocol.js";

/** Send every file of an image directory over the control connection; returns the images' size. */
export async function sendImages(control: Control, dir: string): Promise<number> {
  let total = 0;
  const buf = Buffer.allocUnsafe(MAX_DATA);
  for (const name of fs.readdirSync(dir).sort()) {
    const file = path.join(dir, name);
    if (!fs.statSync(file).isFile()) continue;
    const fd = fs.openSync(file, "r");
    try {
      const size = fs.fstatSync(fd).size;
      await control.sendJson(MCMD.FILE, { name, size });
      for (let off = 0; off < size;) {
        const n = fs.readSync(fd, buf, 0, Math.min(MAX_DATA, size - off), off);
        if (n <= 0) throw new FerryError("FERRY_IMAGES", `${file}: short read at ${off}`);
        await control.sendData(MCMD.DATA, Buffer.from(buf.subarray(0, n)));
        off += n;
      }
      total += size;
    } finally {
      fs.closeSync(fd);
    }
  }
  return total;
}

/**
 * The receiving end: write FILE/DATA frames into `dir` until a frame of another kind arrives,
 * which is returned. File names are plain names (no path): the peer cannot write elsewhere.
 */
export class ImageReceiver {
  private fd = -1;
  private left = 0;
  bytes = 0;

  constructor(readonly dir: string) {}

  /** Take a FILE or DATA frame; false when it is neither. */
  take(cmd: number, payload: Buffer): boolean {
    if (cmd === MCMD.FILE) {
      this.finishFile();
      const { name, size } = parseFileHeader(payload);
      this.fd = fs.openSync(path.join(this.dir, name), "w", IMAGE_MODE);
      this.left = size;
      if (!size) this.finishFile();
      return true;
    }
    if (cmd === MCMD.DATA) {
      if (this.fd < 0 || payload.length > this.left) throw new FerryError("FERRY_PROTOCOL", "image data beyond the announced file size");
      let done = 0;
      while (done < payload.length) done += fs.writeSync(this.fd, payload, done, payload.length - done);
      this.left -= payload.length;
      this.bytes += payload.length;
      if (!this.left) this.finishFile();
      return true;
    }
    return false;
  }

  private finishFile(): void {
    if (this.fd < 0) return;
    if (this.left) throw new FerryError("FERRY_PROTOCOL", `an image file ended ${this.left} bytes short`);
    fs.closeSync(this.fd);
    this.fd = -1;
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
