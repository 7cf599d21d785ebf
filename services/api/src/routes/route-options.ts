import type { Gateway, RuntimeDeps } from "@outcome-runtime/runtime";
import type { Redis } from "ioredis";

/** What every route plugin is registered with. */
export interface RouteOptions {
  readonly deps: RuntimeDeps;
  /** Redis for enqueuing jobs, created with `enableOfflineQueue: false` so an outage fails fast. */
  readonly redis: Redis;
  /** Prefix of the BullMQ keys. */
  readonly queuePrefix: string;
  /** The LLM gateway (rules only when no provider is configured). */
  readonly gateway: Gateway;
  /** Base of the links the API hands out (OUTCOME_RUNTIME_PUBLIC_URL), no trailing slash. */
  readonly publicUrl: string;
}
