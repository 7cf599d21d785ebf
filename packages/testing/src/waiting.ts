/**
 * Waiting in integration tests: for a condition, for a free port, and
 * cleaning a test's Redis keys.
 */
import { type AddressInfo, createServer } from "node:net";

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Call `probe` until it returns something other than `undefined` or `false`,
 * and return that.
 *
 * @throws Error naming `what` (and the `diagnostics`) after `timeoutMs` (default 20 000 ms).
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  options: { timeoutMs?: number; intervalMs?: number; diagnostics?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${options.diagnostics ? `\n${options.diagnostics()}` : ""}`);
    }
    await sleep(options.intervalMs ?? 25);
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The two Redis commands `deleteRedisKeys` needs (an ioredis client has them). */
export interface KeyScanner {
  scan(cursor: string, match: "MATCH", pattern: string, count: "COUNT", n: number): Promise<[string, string[]]>;
  del(...keys: string[]): Promise<number>;
}

/** SCAN + DEL of every key of `prefix:*` (FLUSHDB would hit the other tests sharing this Redis). */
export async function deleteRedisKeys(redis: KeyScanner, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}
