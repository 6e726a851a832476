import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PNG } from "pngjs";

/** Debian's Chromium, installed by `scripts/install-system-deps.sh chromium` (CI runs it). */
const CHROMIUM = "/usr/bin/chromium";

/** Render a local HTML file in headless Chromium and return the screenshot's pixels. */
export function screenshot(htmlFile: string, width = 1000, height = 700): PNG {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "ferry-chromium-"));
  const out = path.join(profile, "shot.png");
  try {
    execFileSync(CHROMIUM, [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      `--user-data-dir=${profile}`, `--window-size=${width},${height}`, `--screenshot=${out}`,
      `file://${path.resolve(htmlFile)}`,
    ], { timeout: 60_000, stdio: "ignore" });
    return PNG.sync.read(fs.readFileSync(out));
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

/** How many pixels are within `tolerance` of the colour "#rrggbb". */
export function countColour(png: PNG, hex: string, tolerance = 24): number {
  const want = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  let n = 0;
  for (let i = 0; i < png.data.length; i += 4) {
    if (Math.abs(png.data[i] - want[0]) <= tolerance && Math.abs(png.data[i + 1] - want[1]) <= tolerance && Math.abs(png.data[i + 2] - want[2]) <= tolerance) n++;
  }
  return n;
}
