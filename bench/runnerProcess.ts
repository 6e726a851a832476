/**
 * What the benchmark's measuring processes (bench/runner.ts, bench/lazyRunner.ts) share: JSON
 * report lines on stdout, their own RSS, required options, and dispatch to the mode named first.
 */

export const emit = (report: object) => process.stdout.write(JSON.stringify(report) + "\n");
export const rssMiB = () => process.memoryUsage().rss / 2 ** 20;
export const peakRssMiB = () => process.resourceUsage().maxRSS / 1024;

/** `need(name)`: the value of --name, or an error naming `tool` and the missing option. */
export function requireOptions<K extends string>(tool: string, values: Partial<Record<K, string>>): (name: K) => string {
  return (name) => {
    const v = values[name];
    if (v === undefined) throw new Error(`${tool}: --${name} is required`);
    return v;
  };
}

/** Run the mode named `mode`: an unknown mode exits 2, a failing one prints its stack and exits 1. */
export async function runMode(tool: string, mode: string, modes: Record<string, () => Promise<void>>): Promise<void> {
  const run = modes[mode];
  if (!run) {
    process.stderr.write(`${tool}: unknown mode ${mode} (${Object.keys(modes).join(", ")})\n`);
    process.exit(2);
  }
  try {
    await run();
  } catch (e) {
    const err = e as { code?: string; stack?: string };
    process.stderr.write(`${tool} ${mode}: ${err.code ?? ""} ${err.stack ?? String(e)}\n`);
    process.exit(1);
  }
}
