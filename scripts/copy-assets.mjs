// Copies the protocol-buffer schemas next to the compiled code that loads them.
import { cpSync, mkdirSync } from "node:fs";
mkdirSync("dist/src/images/schema", { recursive: true });
cpSync("src/images/schema", "dist/src/images/schema", { recursive: true });
