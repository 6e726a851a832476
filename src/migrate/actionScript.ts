import { spawnSync } from "node:child_process";
import { FerryError } from "../errors.js";

/**
 * CRIU's action scripts: `--action-script FILE` runs FILE at fixed points of a migration with
 * CRTOOLS_SCRIPT_ACTION naming the point and CRTOOLS_INIT_PID the process, e.g. to move a
 * service address with the process. `ferry migrate` runs post-dump (the process is frozen here,
 * before its images leave), `ferry agent` post-restore (it runs there). A script that fails at
 * post-dump fails the migration (the source then runs on); at post-restore it is only reported:
 * the process already runs at the destination.
 */
export type Action = "post-dump" | "post-restore";

export function runActionScript(script: string | undefined, action: Action, pid: number): void {
  if (!script) return;
  const r = spawnSync(script, [], {
    env: { ...process.env, CRTOOLS_SCRIPT_ACTION: action, CRTOOLS_INIT_PID: String(pid) },
    stdio: ["ignore", "ignore", "pipe"], timeout: 10_000,
  });
  if (r.error) throw new FerryError("FERRY_ACTION_SCRIPT", `action script ${script} (${action}) did not run: ${r.error.message}`);
  if (r.status !== 0) {
    const why = r.stderr.toString().trim().split("\n").pop() ?? "";
    throw new FerryError("FERRY_ACTION_SCRIPT", `action script ${script} failed at ${action} (${r.status ?? r.signal})${why ? `: ${why}` : ""}`);
  }
}
