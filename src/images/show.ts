import fs from "node:fs";
import { ImageDir, toJSONValue, type MessageName } from "./store.js";
import { Regs } from "../kernel/ptrace.js";
import type { CoreImage } from "./types.js";

const KINDS: [RegExp, MessageName][] = [
  [/^inventory\.img$/, "Inventory"], [/^core-\d+\.img$/, "Core"], [/^mm-\d+\.img$/, "Mm"],
  [/^pagemap-\d+\.img$/, "PageMap"], [/^fds-\d+\.img$/, "FdTable"], [/^files\.img$/, "Files"],
];

/** Every metadata file of an image directory as plain JSON; registers are decoded by name. */
export function showImages(dir: string): Record<string, unknown> {
  const images = new ImageDir(dir);
  const out: Record<string, unknown> = {};
  for (const name of fs.readdirSync(dir).sort()) {
    const kind = KINDS.find(([re]) => re.test(name));
    if (!kind) {
      out[name] = { rawBytes: fs.statSync(images.path(name)).size };
      continue;
    }
    const obj = images.read<object>(name, kind[1]);
    const json = toJSONValue(kind[1], obj) as Record<string, unknown>;
    if (kind[1] === "Core") {
      const core = obj as CoreImage;
      json.threads = core.threads.map((t, i) => ({ ...(json.threads as object[])[i], regs: new Regs(Buffer.from(t.regs)).toJSON(), xstate: `${t.xstate.length} bytes` }));
    }
    out[name] = json;
  }
  return out;
}
