import { Command, Option } from "commander";
import { FerryError } from "../errors.js";
import { openTransport, type Transport } from "../net/transport.js";
import type { Endpoint } from "../net/endpoint.js";

export interface SecurityFlags {
  key?: string;
  insecure?: boolean | string;
  forceInsecure?: boolean;
}

/** --key FILE, --insecure[=force], --force-insecure: on every command that opens a connection. */
export function addSecurityOptions(cmd: Command): Command {
  return cmd
    .option("--key <file>", "pre-shared key made by `ferry keygen` (default: $FERRY_KEY, else ~/.config/ferry/key)")
    .option("--insecure [force]", "plain TCP, no key: memory goes in clear (loopback addresses only, unless --insecure=force)")
    .addOption(new Option("--force-insecure", "same as --insecure=force").hideHelp());
}

/** The transport the flags ask for (TLS with the key unless --insecure). */
export function transportOf(o: SecurityFlags, endpoint: Endpoint, log?: (line: string) => void): Transport {
  if (o.insecure !== undefined && o.insecure !== true && o.insecure !== "force") {
    throw new FerryError("FERRY_USAGE", `--insecure takes no value or "force", not ${JSON.stringify(o.insecure)}`);
  }
  if (o.key && (o.insecure || o.forceInsecure)) throw new FerryError("FERRY_USAGE", "--key and --insecure contradict each other: give one");
  const insecure = o.forceInsecure || o.insecure === "force" ? "force" : o.insecure === true;
  return openTransport({ keyFile: o.key, insecure, log, endpoints: [endpoint] });
}
