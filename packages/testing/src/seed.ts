import type { Principal, Role } from "@outcome-runtime/core";
import type { Db } from "@outcome-runtime/db";
import { authenticate, bootstrap, type Caller, createApiKey, generateApiKey } from "@outcome-runtime/runtime";

export interface Seeded {
  readonly workspaceId: string;
  /** The bootstrap admin key (plain text) and its caller. */
  readonly adminKey: string;
  readonly admin: Caller;
  /** Create a key with a role, through the real use case; returns the key and its caller. */
  readonly key: (name: string, role: Role) => Promise<{ key: string; caller: Caller }>;
}

/** Bootstrap the default workspace with an admin key, as the API does on first start. */
export async function seedWorkspace(db: Db): Promise<Seeded> {
  const adminKey = generateApiKey();
  const deps = { db };
  const { workspaceId } = await bootstrap(deps, { apiKey: adminKey });
  const principal: Principal | null = await authenticate(deps, adminKey);
  if (principal === null) throw new Error("the bootstrap admin key was not registered");
  const admin: Caller = { principal, channel: "api", requestId: null };
  return {
    workspaceId,
    adminKey,
    admin,
    key: async (name, role) => {
      const created = await createApiKey(deps, admin, { name, role });
      return {
        key: created.key,
        caller: { principal: { id: created.id, name, role, workspaceId }, channel: "api", requestId: null },
      };
    },
  };
}
