/**
 * A redis client inside a test host (python3, started with host.spawn): one TCP connection that
 * stays open while the server migrates, driven line by line from the test.
 *
 *   const c = await redisClientIn(hosts.b, "127.100.0.10", 6400);
 *   await c.ask("SET", "alpha", "42");   // "+OK"
 *   await c.ask("FILL", "50000");        // 50,000 keys key:N = "value:N:" × 10, pipelined
 *   c.close();
 */
import type { ChildProcess } from "node:child_process";
import type { Host } from "../../src/hosts/hosts.js";

const CLIENT = String.raw`
import json, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
f = s.makefile("rb")
def encode(args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
def reply():
    line = f.readline()
    if not line:
        raise EOFError("the server closed the connection")
    kind, rest = line[:1], line[1:].strip()
    if kind in (b"+", b"-", b":"):
        return line.strip().decode()
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b"*":
        return [reply() for _ in range(int(rest))]
    raise ValueError("not RESP: %r" % line)
print(json.dumps("ready"), flush=True)
for line in sys.stdin:
    args = line.split()
    try:
        if args[0] == "FILL":
            n = int(args[1])
            s.sendall(b"".join(encode([b"SET", b"key:%d" % i, b"value:%d:" % i * 10]) for i in range(n)))
            out = [reply() for _ in range(n)]
            print(json.dumps("+OK" if all(r == "+OK" for r in out) else out[:3]), flush=True)
        else:
            s.sendall(encode([a.encode() for a in args]))
            print(json.dumps(reply()), flush=True)
    except Exception as e:
        print(json.dumps({"error": str(e)}), flush=True)
`;

export interface RedisClient {
  /** Send one command; resolves with the decoded reply (a string, null, a list, or {error}). */
  ask(...args: string[]): Promise<unknown>;
  close(): void;
}

export async function redisClientIn(host: Host, address: string, port: number, timeoutMs = 20_000): Promise<RedisClient> {
  const child: ChildProcess = host.spawn(["python3", "-c", CLIENT, address, String(port)], { stdio: ["pipe", "pipe", "pipe"] });
  let pending = "", stderr = "";
  const lines: string[] = [];
  let wake: (() => void) | null = null;
  child.stdout!.setEncoding("utf8").on("data", (d: string) => {
    pending += d;
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      lines.push(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
    wake?.();
  });
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  let ended = false;
  child.on("close", () => {
    ended = true;
    wake?.();
  });
  const next = async (what: string): Promise<unknown> => {
    const deadline = Date.now() + timeoutMs;
    while (!lines.length) {
      if (ended) throw new Error(`the redis client in ${host.name} ended before answering ${what}: ${stderr.trim()}`);
      if (Date.now() > deadline) throw new Error(`no answer to ${what} within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 50);
      });
    }
    return JSON.parse(lines.shift()!);
  };
  await next("the connection");
  return {
    ask(...args) {
      child.stdin!.write(args.join(" ") + "\n");
      return next(args.join(" "));
    },
    close() {
      child.stdin!.end();
      child.kill("SIGKILL");
    },
  };
}
