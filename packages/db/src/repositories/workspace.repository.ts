import { DEFAULT_WORKSPACE_SETTINGS, type Workspace, type WorkspaceSettings } from "@outcome-runtime/core";
import type { DbOrTrx } from "../database";

/** Stored settings with the defaults for what is missing (settings written before a field existed). */
function toSettings(raw: Record<string, unknown> | null | undefined): WorkspaceSettings {
  const decisions = raw?.sessionRequiredDecisions;
  const duties = raw?.separationOfDuties;
  const retention = raw?.signalRetention as { days?: unknown } | undefined;
  const days = retention?.days;
  return {
    sessionRequiredDecisions: Array.isArray(decisions)
      ? decisions.filter((d): d is string => typeof d === "string")
      : DEFAULT_WORKSPACE_SETTINGS.sessionRequiredDecisions,
    separationOfDuties: typeof duties === "boolean" ? duties : DEFAULT_WORKSPACE_SETTINGS.separationOfDuties,
    // Validated when set; anything else stored reads as "keep forever", the safe side for evidence.
    signalRetention: {
      days: typeof days === "number" && Number.isInteger(days) && days > 0 ? days : null,
    },
  };
}

function toWorkspace(row: {
  id: string;
  slug: string;
  name: string;
  created_at: Date;
  settings: Record<string, unknown>;
}): Workspace {
  return { id: row.id, slug: row.slug, name: row.name, createdAt: row.created_at, settings: toSettings(row.settings) };
}

/** Create the workspace `slug` if missing; return it either way. */
export async function ensureWorkspace(db: DbOrTrx, slug: string, name: string): Promise<Workspace> {
  await db
    .insertInto("workspaces")
    .values({ slug, name })
    .onConflict((oc) => oc.column("slug").doNothing())
    .execute();
  const row = await db.selectFrom("workspaces").selectAll().where("slug", "=", slug).executeTakeFirstOrThrow();
  return toWorkspace(row);
}

/** Lock the workspace's row until the transaction ends (`FOR UPDATE`): serialises changes of its members. */
export async function lockWorkspace(db: DbOrTrx, id: string): Promise<void> {
  await db.selectFrom("workspaces").select("id").where("id", "=", id).forUpdate().execute();
}

/** Create a workspace with this slug; null when the slug is taken (nothing changed). */
export async function insertWorkspace(db: DbOrTrx, slug: string, name: string): Promise<Workspace | null> {
  const row = await db
    .insertInto("workspaces")
    .values({ slug, name })
    .onConflict((oc) => oc.column("slug").doNothing())
    .returningAll()
    .executeTakeFirst();
  return row ? toWorkspace(row) : null;
}

/** The workspace with this slug, or null. */
export async function findWorkspaceBySlug(db: DbOrTrx, slug: string): Promise<Workspace | null> {
  const row = await db.selectFrom("workspaces").selectAll().where("slug", "=", slug).executeTakeFirst();
  return row ? toWorkspace(row) : null;
}

export async function findWorkspace(db: DbOrTrx, id: string): Promise<Workspace | null> {
  const row = await db.selectFrom("workspaces").selectAll().where("id", "=", id).executeTakeFirst();
  return row ? toWorkspace(row) : null;
}

/** Replace the workspace's settings; returns the workspace as stored. */
export async function updateWorkspaceSettings(
  db: DbOrTrx,
  id: string,
  settings: WorkspaceSettings,
): Promise<Workspace | null> {
  const row = await db
    .updateTable("workspaces")
    .set({ settings: JSON.stringify(settings) })
    .where("id", "=", id)
    .returningAll()
    .executeTakeFirst();
  return row ? toWorkspace(row) : null;
}
