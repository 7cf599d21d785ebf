/**
 * Who may change an outcome, and what a change of it changed: the owner rule
 * for revisions, the field-by-field diff of two normalised specs, and which
 * fields are sensitive (they decide who approves, what agents may touch, and
 * when the runtime stops a harmful experiment).
 */
import type { Actor } from "./gate.machine";
import type { GuardVerdict } from "./machine";
import { roleMay } from "./permissions";

/** One changed field of a revision: its JSON path in the normalised spec and its values (null when absent). */
export interface SpecChange {
  /** e.g. `constraints.kill.max_harm`, `gates.launch_approval.assignees`, `constraints.guardrails[0].max_regression`. */
  readonly path: string;
  readonly before: unknown;
  readonly after: unknown;
}

/**
 * The fields of a normalised outcome spec whose change is sensitive, as path
 * prefixes: a change at one of them, below one, or of a whole object holding
 * one (e.g. `gates` added) is sensitive.
 *
 * - `owner`, `gates`: who is accountable, who decides each gate, the backup, the SLA and what its expiry does.
 * - `constraints.scope`: the paths agents may and may not change.
 * - `constraints.kill`, `constraints.guardrails` (the list, thresholds and their connectors): when harm pauses
 *   an experiment.
 * - `signal.connector`: where the signal is read (connector settings hold env var and secret names, never values).
 * - `target.direction`: harm is a move against it, so flipping it turns the kill switch around.
 * - `experiment_defaults.min_sample_per_arm`, `min_duration`, `decision_rules`: nothing, a kill included, is
 *   decided before the minimums, and `consecutive_error_limit: -1` never pauses an experiment whose polls fail.
 */
const SENSITIVE_SPEC_PATHS: readonly string[] = [
  "owner",
  "gates",
  "constraints.scope",
  "constraints.kill",
  "constraints.guardrails",
  "signal.connector",
  "target.direction",
  "experiment_defaults.min_sample_per_arm",
  "experiment_defaults.min_duration",
  "experiment_defaults.decision_rules",
];

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = Object.keys(a).filter((k) => a[k] !== undefined);
    const otherKeys = Object.keys(b).filter((k) => b[k] !== undefined);
    return keys.length === otherKeys.length && keys.every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}

function join(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return path === "" ? key : `${path}.${key}`;
}

/**
 * The field-by-field difference of two normalised specs (or any JSON values),
 * deepest first: objects are compared key by key (a missing object counts as
 * empty, so an added section lists its fields); arrays of objects of the same
 * length element by element (`guardrails[0].max_regression`); any other array
 * (globs, assignees) or a scalar as one value. Absent values are `null`.
 * Keys are visited in sorted order, so the same two specs give the same list.
 *
 * @example diffSpecs({ constraints: { kill: { max_harm: 0.02 } } }, { constraints: { kill: { max_harm: 0.99 } } })
 *   // → [{ path: "constraints.kill.max_harm", before: 0.02, after: 0.99 }]
 */
export function diffSpecs(before: unknown, after: unknown, path = ""): SpecChange[] {
  if (deepEqual(before, after)) return [];
  const objectish = (v: unknown) => v === undefined || v === null || isPlainObject(v);
  if ((isPlainObject(before) || isPlainObject(after)) && objectish(before) && objectish(after)) {
    const a = isPlainObject(before) ? before : {};
    const b = isPlainObject(after) ? after : {};
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((key) => diffSpecs(a[key], b[key], join(path, key)));
  }
  if (
    Array.isArray(before) &&
    Array.isArray(after) &&
    before.length === after.length &&
    [...before, ...after].every(isPlainObject)
  ) {
    return before.flatMap((item, i) => diffSpecs(item, after[i], join(path, i)));
  }
  return [{ path, before: before ?? null, after: after ?? null }];
}

/** Whether a change at `path` (a {@link SpecChange} path) touches a {@link SENSITIVE_SPEC_PATHS} field. */
export function isSensitivePath(path: string): boolean {
  const within = (inner: string, outer: string) =>
    inner === outer || inner.startsWith(`${outer}.`) || inner.startsWith(`${outer}[`);
  return SENSITIVE_SPEC_PATHS.some((sensitive) => within(path, sensitive) || within(sensitive, path));
}

/**
 * Who may revise an existing outcome (re-apply it with changed content): its
 * owner (the `owner` of the current revision, compared case-insensitively with
 * the actor's name, a person's email) or a role with `outcome.revise_any`
 * (admins). Anyone who may apply (`outcome.apply`, checked first) may create a
 * new outcome.
 *
 * @returns null when allowed, else `not_outcome_owner` naming the owner and the fix.
 */
export function mayReviseOutcome(actor: Actor, outcome: { slug: string; owner: string }): GuardVerdict {
  if (roleMay(actor.role, "outcome.revise_any")) return null;
  if (actor.name.trim().toLowerCase() === outcome.owner.trim().toLowerCase()) return null;
  return {
    code: "not_outcome_owner",
    message:
      `outcome ${outcome.slug} is owned by ${outcome.owner}; ${actor.name} may not revise it. ` +
      `Ask ${outcome.owner} or an admin to apply the change, or give the file a new id to start an outcome of your own`,
    details: {
      field: "owner",
      owner: outcome.owner,
      outcome: outcome.slug,
      actor: actor.name,
      operation: "outcome.revise_any",
    },
  };
}
