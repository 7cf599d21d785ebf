import type { Gateway, RuntimeDeps } from "@outcome-runtime/runtime";

/** What every route plugin is registered with. Routes hold no queue: work for the worker goes through Postgres. */
export interface RouteOptions {
  readonly deps: RuntimeDeps;
  /** The LLM gateway (rules only when no provider is configured). */
  readonly gateway: Gateway;
  /** Base of the links the API hands out (OUTCOME_RUNTIME_PUBLIC_URL), no trailing slash. */
  readonly publicUrl: string;
}
