import type { RuntimeDeps } from "@outcome-runtime/runtime";

/** What every route plugin is registered with. */
export interface RouteOptions {
  readonly deps: RuntimeDeps;
}
