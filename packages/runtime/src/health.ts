import { pingDb } from "@outcome-runtime/db";
import type { Redis } from "ioredis";
import type { RuntimeDeps } from "./context";

/** Whether Postgres answers `SELECT 1` (false on any error). */
export async function checkDatabase(deps: RuntimeDeps): Promise<boolean> {
  return pingDb(deps.db);
}

/** The one `maxmemory-policy` BullMQ is safe with: any other lets Redis drop queued jobs under memory pressure. */
const REQUIRED_EVICTION_POLICY = "noeviction";

/** What to do about a wrong eviction policy (the same words in `/healthz` and in the start-up log). */
const EVICTION_POLICY_FIX =
  "set maxmemory-policy noeviction on the Redis server (redis.conf, or CONFIG SET maxmemory-policy noeviction " +
  "and CONFIG REWRITE; on a managed Redis, in its parameter group): with any other policy Redis may evict " +
  "queued jobs and job schedulers under memory pressure";

/**
 * The `redis_eviction_policy` check of `/healthz` (API and worker):
 * - `ok`: `maxmemory-policy` is `noeviction`;
 * - `unhealthy`: another policy (`value` names it, `fix` says what to do);
 * - `unknown`: the policy could not be read (CONFIG is disabled or renamed, as on
 *   many managed Redis services, or Redis did not answer in time); `detail` says why.
 */
export interface EvictionPolicyCheck {
  readonly status: "ok" | "unhealthy" | "unknown";
  /** The `maxmemory-policy` found; null when it could not be read. */
  readonly value: string | null;
  readonly fix?: string;
  readonly detail?: string;
}

/**
 * Read Redis's `maxmemory-policy` with `CONFIG GET` and judge it. Never throws;
 * gives up after `timeoutMs` (default 1 000) so a liveness probe does not hang
 * on a Redis that is down.
 */
export async function checkRedisEvictionPolicy(redis: Redis, timeoutMs = 1000): Promise<EvictionPolicyCheck> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    const answer = await Promise.race([redis.call("CONFIG", "GET", "maxmemory-policy"), timeout]);
    if (answer === "timeout") {
      return { status: "unknown", value: null, detail: `Redis did not answer CONFIG GET within ${timeoutMs} ms` };
    }
    // RESP2 answers [name, value]; RESP3 a map, which ioredis gives as an object.
    const value = Array.isArray(answer)
      ? answer[1]
      : answer !== null && typeof answer === "object"
        ? (answer as Record<string, unknown>)["maxmemory-policy"]
        : undefined;
    if (value === undefined || value === null) {
      return { status: "unknown", value: null, detail: "CONFIG GET maxmemory-policy returned nothing" };
    }
    const policy = String(value);
    return policy === REQUIRED_EVICTION_POLICY
      ? { status: "ok", value: policy }
      : { status: "unhealthy", value: policy, fix: EVICTION_POLICY_FIX };
  } catch (error) {
    return {
      status: "unknown",
      value: null,
      detail: `CONFIG GET maxmemory-policy failed (${error instanceof Error ? error.message : String(error)}); check the policy by hand: it must be noeviction`,
    };
  } finally {
    clearTimeout(timer);
  }
}
