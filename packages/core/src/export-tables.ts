/**
 * What an export of a workspace carries (docs/export.md), named once for the
 * repositories, the runtime, the API, the CLI and the tests: the format and
 * its version, the exported tables in the order an import writes them, and
 * every other table of the database with why an export leaves it out.
 * `packages/db/src/export-tables.int.test.ts` fails when a table of the
 * migrated database is in neither list.
 */

/** The `format` of every export's manifest. */
export const EXPORT_FORMAT = "outcome-runtime-export";
/**
 * The format version this runtime writes. Version 1 (analyses with
 * `relative_effect` and snake_case JSON keys) is still read: the import
 * upgrades its analyses rows.
 */
export const EXPORT_VERSION = 2;
/** The format versions an import reads. */
export const READABLE_EXPORT_VERSIONS: readonly number[] = [1, 2];

/** Tables exported as JSON arrays (`<table>.json`), parents first. */
export const EXPORT_ROW_TABLES = [
  "outcomes",
  "outcome_revisions",
  "experiments",
  "gates",
  "signal_series",
  "analyses",
  "learnings",
  "audit_events",
] as const;
export type ExportRowTable = (typeof EXPORT_ROW_TABLES)[number];

/** Every exported table: the JSON ones and `signal_points` (`signal_points.csv`). */
export const EXPORT_TABLES = [...EXPORT_ROW_TABLES, "signal_points"] as const;
export type ExportTable = (typeof EXPORT_TABLES)[number];

/**
 * The order an import writes the tables in. `experiments` comes twice: the
 * second pass, after `gates`, fills the experiments' portfolio-gate links
 * (the two tables reference each other).
 */
export const IMPORT_ORDER: readonly ExportTable[] = [
  "outcomes",
  "outcome_revisions",
  "experiments",
  "gates",
  "experiments",
  "signal_series",
  "signal_points",
  "analyses",
  "learnings",
  "audit_events",
];

/** Every table (and view) of the database an export leaves out, with why. */
export const NOT_EXPORTED: Readonly<Record<string, string>> = {
  api_keys: "secrets: create new keys on the new instance",
  webhook_deliveries: "transient outbox",
  gate_notifications: "emails sent",
  gate_tokens: "decision-link secrets",
  idempotency_keys: "transient",
  llm_cache: "cache",
  llm_calls: "usage metering",
  workspace_secrets: "sealed with this installation's key: an admin sets them again on the new instance",
  sessions: "dashboard sign-ins: secrets",
  poll_requests: "transient outbox of polls asked for",
  learning_summary_requests: "transient outbox of learning summaries; the learnings themselves are exported",
  signal_point_revisions: "the trace of values a source revised; the points are exported as they stand",
  signal_points_daily: "a view of signal_points, rebuilt from them",
  workspaces:
    "the workspace itself: an import goes into an existing one, and the manifest carries its slug, name and settings",
  imports: "this installation's record of imports into it",
  settings: "installation settings (the signal storage mode), not workspace data",
  kysely_migration: "the schema's migration history: the new instance migrates itself",
  kysely_migration_lock: "the migration lock",
  flag_rollouts:
    "the flag providers' outbox: the new instance's experiments ask their providers again when they next move, and the audit events keep what was applied",
  learning_embeddings:
    "vectors derived from the learnings by this installation's embedding model: the new instance's backfill embeds the imported learnings again",
  members:
    "the people of this installation, and their sign-in; the new instance's admins invite them again (the audit events keep who did what)",
  workspace_members: "who belongs to this workspace with which role: re-created by invitations on the new instance",
  invitations: "single-use links to this installation: secrets",
  flag_weight_history:
    "the splits a provider served on this instance, read from it; the audit events keep each applied split and drift",
};

/** What every manifest lists as `excluded`: one line per table left out, `<table> (<why>)`. */
export const EXCLUDED_FROM_EXPORT: readonly string[] = Object.entries(NOT_EXPORTED).map(
  ([table, why]) => `${table} (${why})`,
);
