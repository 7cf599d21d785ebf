import { pingDb } from "@outcome-runtime/db";
import type { RuntimeDeps } from "./context";

/** Whether Postgres answers `SELECT 1` (false on any error). */
export async function checkDatabase(deps: RuntimeDeps): Promise<boolean> {
  return pingDb(deps.db);
}
