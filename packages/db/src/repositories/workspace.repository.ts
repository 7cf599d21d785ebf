import type { Workspace } from "@outcome-runtime/core";
import type { DbOrTrx } from "../database";

/** Create the workspace `slug` if missing; return it either way. */
export async function ensureWorkspace(db: DbOrTrx, slug: string, name: string): Promise<Workspace> {
  await db
    .insertInto("workspaces")
    .values({ slug, name })
    .onConflict((oc) => oc.column("slug").doNothing())
    .execute();
  const row = await db.selectFrom("workspaces").selectAll().where("slug", "=", slug).executeTakeFirstOrThrow();
  return { id: row.id, slug: row.slug, name: row.name, createdAt: row.created_at };
}
