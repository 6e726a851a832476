import fs from "node:fs";
import path from "node:path";
import { FerryError } from "../errors.js";
import { ImageDir } from "../images/store.js";
import type { Inventory, MmImage, PageMapImage, VmaImage } from "../images/types.js";
import { PageIndex } from "./pageIndex.js";

/** What both ends of a lazy migration read from the images: which pages travel, and where. */
export interface LazyImages {
  dir: string;
  inventory: Inventory;
  pid: number;
  index: PageIndex;
  /** the lazy mappings (the process's private anonymous memory) */
  vmas: VmaImage[];
  /** size of the images: what had to reach the destination before the restore */
  imageBytes: number;
}

export function loadLazyImages(from: string | ImageDir): LazyImages {
  const images = typeof from === "string" ? new ImageDir(from) : from;
  const dir = images.dir;
  const inventory = images.read<Inventory>("inventory.img", "Inventory");
  if (!inventory.lazy) {
    throw new FerryError("FERRY_NOT_LAZY", `${dir} was not dumped with --lazy: there are no pages to serve (restore it without --lazy)`);
  }
  const pid = inventory.rootPid;
  const mm = images.read<MmImage>(`mm-${pid}.img`, "Mm");
  const pagemap = images.read<PageMapImage>(`pagemap-${pid}.img`, "PageMap");
  const index = new PageIndex(pagemap.lazyRuns ?? []);
  if (index.total !== (pagemap.lazyPages ?? 0)) {
    throw new FerryError("FERRY_IMAGE_CORRUPT", `${images.path(`pagemap-${pid}.img`)}: lazy runs hold ${index.total} pages, the header says ${pagemap.lazyPages}`);
  }
  return { dir, inventory, pid, index, vmas: mm.vmas.filter((v) => v.lazy), imageBytes: dirBytes(dir) };
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.isFile()) n += fs.statSync(path.join(dir, e.name)).size;
  }
  return n;
}
