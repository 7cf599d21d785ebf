/**
 * One name per quantity in the analyses: the column `relative_effect` becomes
 * `relative_lift` (the name the statistics, the REST answer and the dashboard
 * use), and the JSON of `arms`, `guardrails` and `details` moves from the
 * statistics' former snake_case keys to camelCase (`p_value` → `pValue`,
 * `relative_ci` → `relativeCi`, `sum_sq` → `sumSq`, …), the keys the runtime
 * writes from now on. Arm names and metric names (the keys of `arms`,
 * `carry.arms`, `carry.guardrails` and `rules.counts.guardrails`) are data and
 * stay as they are.
 *
 * `upgradeAnalysisJson` is exported for the import of an export written
 * before this migration (export format version 1).
 */
import { type Kysely, sql } from "kysely";

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The object with its keys renamed by `names` (other keys kept); anything else as it is. */
function renameKeys(value: unknown, names: Readonly<Record<string, string>>): unknown {
  if (!isObject(value)) return value;
  const out: JsonObject = {};
  for (const [key, item] of Object.entries(value)) out[names[key] ?? key] = item;
  return out;
}

/** `f` applied to each value of an object keyed by data (arm or metric names). */
function eachValue(value: unknown, f: (item: unknown) => unknown): unknown {
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, f(item)]));
}

const ARM = { sum_sq: "sumSq" };
const GUARDRAIL = {
  harm_ci: "harmCi",
  p_value: "pValue",
  failure_limit: "failureLimit",
  dry_run: "dryRun",
  failed_analyses: "failedAnalyses",
};
const COMPARISON = {
  relative_lift: "relativeLift",
  relative_ci: "relativeCi",
  p_value: "pValue",
  log_lambda: "logLambda",
  fixed_p_value: "fixedPValue",
};
const SRM = { p_value: "pValue", sequential_p_value: "sequentialPValue", sequential_alarm: "sequentialAlarm" };
const DETAILS = {
  elapsed_seconds: "elapsedSeconds",
  tau2_source: "tau2Source",
  planned_per_arm: "plannedPerArm",
  fixed_per_arm: "fixedPerArm",
};
const RULES = { kill_failure_limit: "killFailureLimit", inconclusive_limit: "inconclusiveLimit" };
const LOOK = { p_value: "pValue", relative_ci: "relativeCi" };

/** One analysis's JSON columns. */
export interface AnalysisJsonColumns {
  readonly arms: unknown;
  readonly guardrails: unknown;
  readonly details: unknown;
}

type Names = Readonly<Record<string, string>>;

/** The names from snake_case to camelCase, or back. */
function direction(names: Names, to: "camel" | "snake"): Names {
  return to === "camel" ? names : Object.fromEntries(Object.entries(names).map(([snake, camel]) => [camel, snake]));
}

/** The JSON columns with every known key renamed to `to`'s spelling. */
function convertAnalysisJson(row: AnalysisJsonColumns, to: "camel" | "snake"): AnalysisJsonColumns {
  const look = direction(LOOK, to);
  const arms = eachValue(row.arms, (arm) => renameKeys(arm, direction(ARM, to)));
  const guardrails = Array.isArray(row.guardrails)
    ? row.guardrails.map((g) => renameKeys(g, direction(GUARDRAIL, to)))
    : row.guardrails;
  let details = renameKeys(row.details, direction(DETAILS, to));
  if (isObject(details)) {
    const d: JsonObject = { ...details };
    if (Array.isArray(d.comparisons))
      d.comparisons = d.comparisons.map((c) => renameKeys(c, direction(COMPARISON, to)));
    if (d.srm !== undefined) d.srm = renameKeys(d.srm, direction(SRM, to));
    if (d.rules !== undefined) d.rules = renameKeys(d.rules, direction(RULES, to));
    if (isObject(d.carry)) {
      const carry: JsonObject = { ...d.carry };
      carry.arms = eachValue(carry.arms, (l) => renameKeys(l, look));
      carry.guardrails = eachValue(carry.guardrails, (g) =>
        isObject(g) ? { ...g, arms: eachValue(g.arms, (l) => renameKeys(l, look)) } : g,
      );
      d.carry = carry;
    }
    details = d;
  }
  return { arms, guardrails, details };
}

/**
 * The JSON columns of an analysis written with the former snake_case keys,
 * in today's camelCase keys. Idempotent: camelCase input comes back equal.
 * Pure; never throws (a value of an unexpected shape is kept as it is).
 */
export function upgradeAnalysisJson(row: AnalysisJsonColumns): AnalysisJsonColumns {
  return convertAnalysisJson(row, "camel");
}

/**
 * The JSON columns of an analysis in the former snake_case keys: the inverse
 * of {@link upgradeAnalysisJson} (what `down` writes, and how a test makes a
 * version-1 export). Pure; never throws.
 */
export function downgradeAnalysisJson(row: AnalysisJsonColumns): AnalysisJsonColumns {
  return convertAnalysisJson(row, "snake");
}

/** Rewrites every analysis's JSON columns with `to`'s keys, a thousand rows at a time (keyset on id). */
async function rewriteAll(db: Kysely<unknown>, to: "camel" | "snake"): Promise<void> {
  let after = "00000000-0000-0000-0000-000000000000";
  for (;;) {
    const { rows } = await sql<{ id: string; arms: unknown; guardrails: unknown; details: unknown }>`
      SELECT id, arms, guardrails, details FROM analyses WHERE id > ${after}::uuid ORDER BY id LIMIT ${BATCH}`.execute(
      db,
    );
    if (rows.length === 0) return;
    const converted = rows.map((r) => ({ id: r.id, ...convertAnalysisJson(r, to) }));
    await sql`
      UPDATE analyses AS a
         SET arms = u.arms, guardrails = u.guardrails, details = u.details
        FROM jsonb_to_recordset(${JSON.stringify(converted)}::jsonb)
             AS u(id uuid, arms jsonb, guardrails jsonb, details jsonb)
       WHERE a.id = u.id`.execute(db);
    after = rows[rows.length - 1]?.id ?? after;
  }
}

const BATCH = 1000;

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE analyses RENAME COLUMN relative_effect TO relative_lift`.execute(db);
  await rewriteAll(db, "camel");
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await rewriteAll(db, "snake");
  await sql`ALTER TABLE analyses RENAME COLUMN relative_lift TO relative_effect`.execute(db);
}
