/**
 * The GrowthBook flag provider: the runtime owns an experiment's split as a
 * GrowthBook feature (value type `string`, one value per arm, the value and
 * its name being the arm's name; the default value is the control arm) with
 * one inline experiment rule (`type: "experiment"`) in the configured
 * environment: `values` with the arms' weights, `coverage: 1`, the configured
 * `hashAttribute`, and the experiment's key as `trackingKey` (the SDK's
 * experiment key and hash seed, kept across writes so units keep their arm).
 *
 * API (GrowthBook REST API, https://docs.growthbook.io/api; OpenAPI spec in
 * growthbook/growthbook `packages/back-end/generated/spec.yaml`), base
 * `<api_url>/api`:
 * - `GET /api/v1/features?limit=100&offset=&projectId=` (listFeatures,
 *   https://docs.growthbook.io/api#tag/features/operation/listFeatures): `read`
 *   pages through the project's features, 100 a page (the documented maximum);
 *   when fewer keys are left than pages, it fetches those keys one by one;
 * - `GET /api/v1/features/{id}` (getFeature): the flag before every write;
 * - `POST /api/v1/features` (postFeature): create;
 * - `POST /api/v1/features/{id}` (updateFeature): replaces the rules of the
 *   environment named (other environments keep theirs), sets `defaultValue`,
 *   unarchives; GrowthBook publishes a new revision at once;
 * - `POST /api/v1/features/{id}/toggle` (toggleFeature): turns the
 *   environment on when only that differs.
 * These v1 routes are the ones every GrowthBook release serves (Cloud and
 * self-hosted); GrowthBook 5 marks them deprecated in favour of `/api/v2`.
 * A missing feature is answered 404 by the spec and 400 `Could not find a
 * feature with that key` by the back-end (`api/features/getFeature.ts`): both
 * read as "missing".
 *
 * Token: a Secret Key (Settings → API Keys) with the `admin` role, or a
 * Personal Access Token of a user who may create, edit and publish features in
 * the project and environment; sent as `Authorization: Bearer secret_...`.
 * With an organization Secret Key, GrowthBook requires the new feature's
 * `owner` (`flags.owner`: a member's email or user id). When the project
 * requires approvals, GrowthBook refuses REST publishes (403) unless the
 * organization setting "REST API always bypasses approval requirements" is on
 * or the key may bypass approvals.
 *
 * Kill (`disable`): the experiment rule is kept but disabled (`enabled:
 * false`) and the environment stays on, so GrowthBook leaves the rule out of
 * the SDK payload and every unit gets the feature's default value, the
 * control arm. Chosen over weights `[1, 0, ...]`, which sticky bucketing would
 * override for units already bucketed and which keeps firing exposure events,
 * and over turning the environment off, which serves the application's
 * fallback rather than control. `read` reports it `{ control: 1, others: 0 }`.
 * Re-enabling the rule (setWeights) brings units back to their former arms.
 *
 * Weights: GrowthBook keeps fractions; its SDK payload rounds them to 4
 * decimals (`roundVariationWeight`, `back-end/src/util/features.ts`), so they
 * are written in ten-thousandths that sum to exactly 1 (largest remainder).
 *
 * Rate limit: 60 requests a minute per key on GrowthBook Cloud (spec, "Errors":
 * "429 - You exceeded the rate limit of 60 requests per minute"); self-hosted
 * `API_RATE_LIMIT_MAX`, default 60. A 429 carries `Retry-After` (seconds),
 * surfaced as `retryAfterMs`.
 */
import { requestJson } from "../http";
import {
  type FlagChange,
  type FlagProvider,
  type FlagProviderContext,
  FlagProviderError,
  type FlagTarget,
  type ServedFlag,
} from "../provider";
import type { FlagProviderModule, SnippetLanguage } from "../provider-module";
import { apiUrlSetting, invalidSetting, show, stringSetting } from "../settings";

const TYPE = "growthbook";

/** GrowthBook Cloud's REST API host (the spec's server is `https://api.growthbook.io/api`; either form is accepted). */
const GROWTHBOOK_API_URLS: readonly string[] = ["https://api.growthbook.io", "https://api.growthbook.io/api"];

/** GrowthBook's weight scale: fractions rounded to 4 decimals in the SDK payload. */
const GROWTHBOOK_WEIGHT_SCALE = 10_000;

/** The documented page size maximum of `GET /api/v1/features`. */
const PAGE_SIZE = 100;

/** Feature keys GrowthBook accepts (`postFeature.ts`). */
const FEATURE_KEY = /^[a-zA-Z0-9_.:|-]+$/u;

const MISSING: ServedFlag = Object.freeze({
  exists: false,
  enabled: false,
  variations: [],
  weights: null,
  version: null,
});

interface Settings {
  /** The host, without `/api`. */
  readonly base: string;
  /** The GrowthBook project id, or "" for none. */
  readonly project: string;
  readonly environment: string;
  readonly hashAttribute: string;
  /** The owner of created features, or "". */
  readonly owner: string;
}

/** One value of an inline experiment rule. */
interface GbValue {
  readonly value: string;
  readonly weight: number;
  readonly name: string | undefined;
}

/** A rule of one environment, read from a `FeatureV1` answer. */
interface GbRule {
  readonly type: string;
  readonly id: string;
  readonly enabled: boolean;
  /** True when the rule applies to some units only: a condition, saved groups, prerequisites, a schedule. */
  readonly targeted: boolean;
  readonly value: string | undefined;
  readonly values: readonly GbValue[] | undefined;
  readonly coverage: number;
  readonly hashAttribute: string;
  readonly trackingKey: string;
  readonly namespaced: boolean;
}

/** A feature, read from a `FeatureV1` answer. */
interface GbFeature {
  readonly id: string;
  readonly archived: boolean;
  readonly project: string;
  readonly valueType: string;
  readonly defaultValue: string;
  readonly dateUpdated: string | null;
  readonly version: string | null;
  readonly environments: Readonly<Record<string, { readonly enabled: boolean; readonly rules: readonly GbRule[] }>>;
}

/**
 * Convert fractions by arm name to GrowthBook's fractions in ten-thousandths
 * (largest remainder, so they sum to exactly 1; ties go to the earlier arm).
 * A name left out of `weights` gets 0.
 *
 * @param names the arms in order
 * @param weights fractions 0..1 by arm name, summing to 1 (±1e-6)
 * @returns fractions by name, multiples of 1/10000, summing to 1
 * @throws FlagProviderError `invalid_config` for an unknown arm, a weight outside 0..1, or a sum other than 1
 */
export function toGrowthBookWeights(
  names: readonly string[],
  weights: Readonly<Record<string, number>>,
  what = `${TYPE} weights`,
): Record<string, number> {
  for (const [name, weight] of Object.entries(weights)) {
    if (!names.includes(name)) {
      throw weightError(what, `${show(name)} is not an arm of the flag (${names.join(", ")})`, weights);
    }
    if (typeof weight !== "number" || !Number.isFinite(weight) || weight < 0 || weight > 1) {
      throw weightError(what, `the weight of ${show(name)} is ${show(weight)}, not a fraction 0..1`, weights);
    }
  }
  const fractions = names.map((n) => weights[n] ?? 0);
  const sum = fractions.reduce((a, b) => a + b, 0);
  if (Math.abs(sum - 1) > 1e-6) throw weightError(what, `the weights sum to ${sum}, not 1`, weights);
  const scaled = fractions.map((f) => Math.round(f * GROWTHBOOK_WEIGHT_SCALE * 1e6) / 1e6);
  const units = scaled.map((s) => Math.floor(s));
  let left = GROWTHBOOK_WEIGHT_SCALE - units.reduce((a, b) => a + b, 0);
  const order = scaled.map((s, i) => ({ i, rest: s - Math.floor(s) })).sort((a, b) => b.rest - a.rest || a.i - b.i);
  for (const { i } of order) {
    if (left <= 0) break;
    units[i] = (units[i] ?? 0) + 1;
    left -= 1;
  }
  return Object.fromEntries(names.map((n, i) => [n, (units[i] ?? 0) / GROWTHBOOK_WEIGHT_SCALE]));
}

function weightError(what: string, problem: string, weights: Readonly<Record<string, number>>): FlagProviderError {
  return new FlagProviderError(
    "invalid_config",
    `${what}: ${problem}; give each arm a fraction 0..1, the fractions summing to 1`,
    { details: { weights: { ...weights } } },
  );
}

function readSettings(settings: Readonly<Record<string, unknown>>, context: FlagProviderContext): Settings {
  const url = apiUrlSetting(TYPE, settings, GROWTHBOOK_API_URLS, context.allowedApiUrls);
  const project = stringSetting(
    TYPE,
    settings,
    "project",
    /^[A-Za-z0-9_.:-]{1,128}$/u,
    "a GrowthBook project id such as prj_abc123 (Settings → Projects), or leave it out",
    "",
  );
  const environment = stringSetting(
    TYPE,
    settings,
    "environment",
    /^[A-Za-z0-9_.-]{1,64}$/u,
    "a GrowthBook environment id such as production (SDK Configuration → Environments)",
  );
  const hashAttribute = stringSetting(
    TYPE,
    settings,
    "hash_attribute",
    /^[A-Za-z_$][A-Za-z0-9_.$-]{0,63}$/u,
    "the attribute GrowthBook hashes units by, e.g. id",
    "id",
  );
  const owner = stringSetting(
    TYPE,
    settings,
    "owner",
    /^[^\s]{1,254}$/u,
    "the email or user id of the GrowthBook member who owns the flags",
    "",
  );
  return { base: url.replace(/\/api$/u, ""), project, environment, hashAttribute, owner };
}

function readApiKey(context: FlagProviderContext): string {
  const key = context.credentials.api_key;
  const fix =
    "name the environment variable (flags.api_key_env) or secret (flags.api_key_secret) holding a GrowthBook Secret Key (secret_..., Settings → API Keys) with write access to features";
  if (typeof key !== "string" || key.trim() === "") {
    throw invalidSetting(TYPE, "api_key_env", "the credential api_key is missing or empty", fix);
  }
  if (/\s/u.test(key)) throw invalidSetting(TYPE, "api_key_env", "the credential api_key contains whitespace", fix);
  if (key.startsWith("sdk-")) {
    throw invalidSetting(
      TYPE,
      "api_key_env",
      "the credential api_key is an SDK client key (sdk-...), which only reads the SDK payload",
      fix,
    );
  }
  return key;
}

/** The flag's key and arms, checked before any request. */
function checkTarget(target: FlagTarget, what: string): readonly string[] {
  if (typeof target.key !== "string" || !FEATURE_KEY.test(target.key)) {
    throw new FlagProviderError(
      "invalid_config",
      `${what}: the flag key ${show(target.key)} is not a GrowthBook feature key; use letters, digits and - _ . : | only`,
      { details: { field: "flag key", value: target.key } },
    );
  }
  const names = target.arms.map((a) => a.name);
  if (
    names.length === 0 ||
    names.some((n) => typeof n !== "string" || n === "") ||
    new Set(names).size !== names.length
  ) {
    throw new FlagProviderError(
      "invalid_config",
      `${what}: the arms ${show(names)} are not distinct non-empty names; give each arm its own name`,
      { details: { field: "arms", value: names } },
    );
  }
  return names;
}

// ---- reading FeatureV1 answers ----

function badShape(what: string, path: string, problem: string): FlagProviderError {
  return new FlagProviderError(
    "bad_response",
    `${what}: ${path} ${problem}, not GrowthBook's documented FeatureV1 answer (https://docs.growthbook.io/api#tag/features)`,
    { details: { call: what, path } },
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function nonEmpty(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0;
}

function parseRule(raw: unknown, what: string, at: string): GbRule {
  if (!isRecord(raw)) throw badShape(what, at, "is not an object");
  if (typeof raw.type !== "string") throw badShape(what, `${at}.type`, "is not a string");
  const condition = typeof raw.condition === "string" ? raw.condition.trim() : "";
  let values: GbValue[] | undefined;
  if (raw.type === "experiment") {
    const list = raw.value ?? raw.values;
    if (!Array.isArray(list)) throw badShape(what, `${at}.value`, "is not an array of variations");
    values = list.map((v, i) => {
      if (!isRecord(v) || typeof v.value !== "string" || typeof v.weight !== "number") {
        throw badShape(what, `${at}.value[${i}]`, "is not { value: string, weight: number }");
      }
      return { value: v.value, weight: v.weight, name: typeof v.name === "string" ? v.name : undefined };
    });
  }
  if (raw.coverage !== undefined && raw.coverage !== null && typeof raw.coverage !== "number") {
    throw badShape(what, `${at}.coverage`, "is not a number");
  }
  const namespace = raw.namespace;
  return {
    type: raw.type,
    id: typeof raw.id === "string" ? raw.id : "",
    enabled: raw.enabled !== false,
    targeted:
      (condition !== "" && condition !== "{}") ||
      nonEmpty(raw.savedGroupTargeting) ||
      nonEmpty(raw.savedGroups) ||
      nonEmpty(raw.prerequisites) ||
      nonEmpty(raw.scheduleRules),
    value: typeof raw.value === "string" ? raw.value : undefined,
    values,
    coverage: typeof raw.coverage === "number" ? raw.coverage : 1,
    hashAttribute: typeof raw.hashAttribute === "string" ? raw.hashAttribute : "",
    trackingKey: typeof raw.trackingKey === "string" ? raw.trackingKey : "",
    namespaced: isRecord(namespace) && namespace.enabled === true,
  };
}

function parseFeature(raw: unknown, what: string, at: string): GbFeature {
  if (!isRecord(raw)) throw badShape(what, at, "is not an object");
  if (typeof raw.id !== "string" || raw.id === "") throw badShape(what, `${at}.id`, "is not a feature key");
  for (const field of ["valueType", "defaultValue"] as const) {
    if (typeof raw[field] !== "string") throw badShape(what, `${at}.${field}`, "is not a string");
  }
  if (!isRecord(raw.environments)) throw badShape(what, `${at}.environments`, "is not an object");
  const environments: Record<string, { enabled: boolean; rules: GbRule[] }> = {};
  for (const [env, settings] of Object.entries(raw.environments)) {
    const envAt = `${at}.environments.${env}`;
    if (!isRecord(settings)) throw badShape(what, envAt, "is not an object");
    if (typeof settings.enabled !== "boolean") throw badShape(what, `${envAt}.enabled`, "is not a boolean");
    if (!Array.isArray(settings.rules)) throw badShape(what, `${envAt}.rules`, "is not an array");
    environments[env] = {
      enabled: settings.enabled,
      rules: settings.rules.map((r, i) => parseRule(r, what, `${envAt}.rules[${i}]`)),
    };
  }
  const revision = isRecord(raw.revision) ? raw.revision.version : undefined;
  const dateUpdated = typeof raw.dateUpdated === "string" ? raw.dateUpdated : null;
  return {
    id: raw.id,
    archived: raw.archived === true,
    project: typeof raw.project === "string" ? raw.project : "",
    valueType: raw.valueType as string,
    defaultValue: raw.defaultValue as string,
    dateUpdated,
    version: typeof revision === "number" ? String(revision) : dateUpdated,
    environments,
  };
}

function featureOf(body: unknown, what: string): GbFeature {
  if (!isRecord(body)) throw badShape(what, "the answer", "is not an object");
  return parseFeature(body.feature, what, "feature");
}

// ---- what a feature serves ----

/** The first inline experiment rule of the environment: the one the runtime writes. */
function experimentRule(rules: readonly GbRule[]): GbRule | undefined {
  return rules.find((r) => r.type === "experiment");
}

/**
 * The share of units each value gets in `environment`, as the SDK evaluates
 * the feature's payload: enabled rules in order, then the default value. Null
 * for rules whose split is not a set of weights over every unit (targeting,
 * partial rollouts, namespaces, another hash attribute, linked experiments).
 */
function sharesOf(feature: GbFeature, rules: readonly GbRule[], hashAttribute: string): Record<string, number> | null {
  const shares: Record<string, number> = {};
  const add = (value: string, share: number) => {
    shares[value] = (shares[value] ?? 0) + share;
  };
  let remaining = 1;
  for (const rule of rules) {
    if (!rule.enabled) continue;
    if (rule.targeted) return null;
    if (rule.type === "force" && rule.value !== undefined) {
      add(rule.value, remaining);
      remaining = 0;
      break;
    }
    if (rule.type === "rollout" && rule.value !== undefined && rule.coverage >= 1) {
      add(rule.value, remaining);
      remaining = 0;
      break;
    }
    if (rule.type !== "experiment" || rule.values === undefined) return null;
    if (rule.namespaced || rule.hashAttribute !== hashAttribute || rule.values.length < 2) return null;
    const coverage = Math.min(1, Math.max(0, rule.coverage));
    const clamped = rule.values.map((v) => Math.min(1, Math.max(0, v.weight)));
    const total = clamped.reduce((a, b) => a + b, 0);
    // The SDK falls back to equal weights when they do not sum to 1 ± 0.01 (getBucketRanges).
    const weights =
      total < 0.99 || total > 1.01 ? clamped.map(() => 1 / clamped.length) : clamped.map((w) => w / total);
    for (const [i, v] of rule.values.entries()) add(v.value, remaining * coverage * (weights[i] ?? 0));
    remaining *= 1 - coverage;
    if (remaining <= 0) break;
  }
  if (remaining > 0) add(feature.defaultValue, remaining);
  return shares;
}

function servedOf(feature: GbFeature, settings: Settings): ServedFlag {
  const env = feature.environments[settings.environment];
  const rule = env === undefined ? undefined : experimentRule(env.rules);
  const variations = rule?.values?.map((v) => v.value) ?? [];
  if (env === undefined || !env.enabled || feature.archived) {
    // GrowthBook leaves the feature out of the SDK payload: the application's fallback is served, not a variation.
    return { exists: true, enabled: false, variations, weights: null, version: feature.version };
  }
  const shares = sharesOf(feature, env.rules, settings.hashAttribute);
  let weights: Record<string, number> | null = null;
  if (shares !== null) {
    weights = {};
    for (const name of [...variations, ...Object.keys(shares)]) {
      weights[name] = Math.round((shares[name] ?? 0) * 1e9) / 1e9;
    }
  }
  return { exists: true, enabled: true, variations, weights, version: feature.version };
}

// ---- what the runtime writes ----

/** The experiment rule the runtime wants, as the `updateFeature`/`postFeature` request takes it. */
function wantedRule(
  target: FlagTarget,
  weights: Readonly<Record<string, number>>,
  enabled: boolean,
  settings: Settings,
  existing: GbRule | undefined,
): Record<string, unknown> {
  return {
    ...(existing !== undefined && existing.id !== "" ? { id: existing.id } : {}),
    type: "experiment",
    description: `Outcome Runtime experiment ${target.experimentKey}`,
    condition: "",
    enabled,
    trackingKey: existing !== undefined && existing.trackingKey !== "" ? existing.trackingKey : target.experimentKey,
    hashAttribute: settings.hashAttribute,
    coverage: 1,
    values: target.arms.map((a) => ({ value: a.name, weight: weights[a.name] ?? 0, name: a.name })),
  };
}

/** True when `rule` is the runtime's experiment rule with these arms, weights and state. */
function ruleMatches(
  rule: GbRule,
  names: readonly string[],
  weights: Readonly<Record<string, number>>,
  enabled: boolean,
  settings: Settings,
): boolean {
  return (
    rule.type === "experiment" &&
    rule.enabled === enabled &&
    !rule.targeted &&
    !rule.namespaced &&
    rule.coverage === 1 &&
    rule.hashAttribute === settings.hashAttribute &&
    rule.values !== undefined &&
    rule.values.length === names.length &&
    rule.values.every(
      (v, i) =>
        v.value === names[i] && v.name === names[i] && Math.abs(v.weight - (weights[names[i] ?? ""] ?? 0)) < 1e-9,
    )
  );
}

/** What differs between the feature and the wanted state: `archived`, `defaultValue`, `enabled`, `rules`. */
function differences(
  feature: GbFeature,
  names: readonly string[],
  weights: Readonly<Record<string, number>>,
  ruleEnabled: boolean,
  settings: Settings,
): string[] {
  const env = feature.environments[settings.environment];
  const out: string[] = [];
  if (feature.archived) out.push("archived");
  if (feature.defaultValue !== names[0]) out.push("defaultValue");
  if (env?.enabled !== true) out.push("enabled");
  const rules = env?.rules ?? [];
  if (rules.length !== 1 || !ruleMatches(rules[0] as GbRule, names, weights, ruleEnabled, settings)) out.push("rules");
  return out;
}

function changeAt(feature: GbFeature): Date {
  const at = feature.dateUpdated === null ? Number.NaN : Date.parse(feature.dateUpdated);
  return Number.isFinite(at) ? new Date(at) : new Date();
}

class GrowthBookProvider implements FlagProvider {
  readonly type = TYPE;
  readonly describe: string;

  constructor(
    private readonly settings: Settings,
    private readonly apiKey: string,
    private readonly fetchFn: typeof fetch,
  ) {
    this.describe = `${TYPE} ${settings.project === "" ? "(no project)" : settings.project}/${settings.environment}`;
  }

  private async call(
    method: "GET" | "POST",
    path: string,
    signal: AbortSignal,
    body?: unknown,
  ): Promise<{ body: unknown; what: string }> {
    const what = `${TYPE} ${method} ${path.split("?")[0]}`;
    const answer = await requestJson(
      this.fetchFn,
      {
        method,
        url: `${this.settings.base}${path}`,
        headers: { authorization: `Bearer ${this.apiKey}` },
        ...(body === undefined ? {} : { body }),
        what,
      },
      signal,
    );
    return { body: answer.body, what };
  }

  /** The feature, or null when GrowthBook does not know it (404, or the back-end's 400 "Could not find"). */
  private async getFeature(key: string, signal: AbortSignal): Promise<GbFeature | null> {
    try {
      const { body, what } = await this.call("GET", `/api/v1/features/${encodeURIComponent(key)}`, signal);
      return featureOf(body, what);
    } catch (error) {
      if (error instanceof FlagProviderError && isMissing(error)) return null;
      throw error;
    }
  }

  /** The feature the runtime may write, or an error when it is of another type or project. */
  private checkOwnership(feature: GbFeature, what: string): void {
    if (feature.valueType !== "string") {
      throw new FlagProviderError(
        "invalid_config",
        `${what}: the feature ${feature.id} exists with value type ${feature.valueType}, and GrowthBook cannot change a feature's type; delete or rename it in GrowthBook, or give the experiment another flag key`,
        { retryable: false, details: { feature: feature.id, valueType: feature.valueType } },
      );
    }
    if (this.settings.project !== "" && feature.project !== this.settings.project) {
      throw invalidSetting(
        TYPE,
        "project",
        `the feature ${feature.id} exists in project ${show(feature.project)}, not ${show(this.settings.project)}`,
        "set flags.project to the feature's project, or move the feature in GrowthBook",
      );
    }
  }

  /** Bring an existing feature to the wanted state with at most one write. */
  private async reconcile(
    feature: GbFeature,
    target: FlagTarget,
    names: readonly string[],
    weights: Readonly<Record<string, number>>,
    ruleEnabled: boolean,
    signal: AbortSignal,
  ): Promise<FlagChange> {
    const path = `/api/v1/features/${encodeURIComponent(target.key)}`;
    this.checkOwnership(feature, `${TYPE} ${path}`);
    const diff = differences(feature, names, weights, ruleEnabled, this.settings);
    if (diff.length === 0) {
      return {
        status: "applied",
        at: new Date(),
        answer: { unchanged: true, feature: feature.id, version: feature.version },
      };
    }
    const env = this.settings.environment;
    let answer: { body: unknown; what: string };
    try {
      if (diff.length === 1 && diff[0] === "enabled") {
        answer = await this.call("POST", `${path}/toggle`, signal, {
          environments: { [env]: true },
          reason: `Outcome Runtime: experiment ${target.experimentKey}`,
        });
      } else {
        const existing = experimentRule(feature.environments[env]?.rules ?? []);
        answer = await this.call("POST", path, signal, {
          ...(diff.includes("defaultValue") ? { defaultValue: names[0] } : {}),
          ...(diff.includes("archived") ? { archived: false } : {}),
          environments: {
            [env]: { enabled: true, rules: [wantedRule(target, weights, ruleEnabled, this.settings, existing)] },
          },
        });
      }
    } catch (error) {
      throw this.writeError(error, target.key);
    }
    return this.confirmed(answer, names, weights, ruleEnabled, diff);
  }

  /** The change as GrowthBook answered it; the answer must show the wanted state. */
  private confirmed(
    answer: { body: unknown; what: string },
    names: readonly string[],
    weights: Readonly<Record<string, number>>,
    ruleEnabled: boolean,
    changed: readonly string[],
  ): FlagChange {
    const feature = featureOf(answer.body, answer.what);
    const left = differences(feature, names, weights, ruleEnabled, this.settings);
    if (left.length > 0) {
      throw new FlagProviderError(
        "bad_response",
        `${answer.what}: the answer does not show the change (${left.join(", ")} of environment ${this.settings.environment} still differ); read the flag again`,
        { details: { call: answer.what, differences: left } },
      );
    }
    return {
      status: "applied",
      at: changeAt(feature),
      answer: { feature: feature.id, version: feature.version, changed: [...changed], call: answer.what },
    };
  }

  /**
   * Create the feature (string values, one per arm, default = control, the
   * experiment rule on in the environment), or bring it to that state; no
   * write when it already serves exactly that.
   *
   * @throws FlagProviderError `invalid_config` (flag key, arms, weights, a feature of another type or project,
   *   `flags.owner` when GrowthBook requires one), `conflict` when the feature appeared meanwhile, and the HTTP codes
   */
  async ensureFlag(target: FlagTarget, signal: AbortSignal): Promise<FlagChange> {
    const names = checkTarget(target, `${TYPE} ensure ${target.key}`);
    const weights = toGrowthBookWeights(
      names,
      Object.fromEntries(target.arms.map((a) => [a.name, a.weight])),
      `${TYPE} ensure ${target.key}`,
    );
    const feature = await this.getFeature(target.key, signal);
    if (feature !== null) return this.reconcile(feature, target, names, weights, true, signal);
    const body = {
      id: target.key,
      description: target.description,
      ...(this.settings.owner === "" ? {} : { owner: this.settings.owner }),
      ...(this.settings.project === "" ? {} : { project: this.settings.project }),
      valueType: "string",
      defaultValue: names[0],
      tags: ["outcome-runtime"],
      environments: {
        [this.settings.environment]: {
          enabled: true,
          rules: [wantedRule(target, weights, true, this.settings, undefined)],
        },
      },
    };
    let answer: { body: unknown; what: string };
    try {
      answer = await this.call("POST", "/api/v1/features", signal, body);
    } catch (error) {
      throw this.writeError(error, target.key);
    }
    return this.confirmed(answer, names, weights, true, ["created"]);
  }

  /**
   * GrowthBook's 400s at a write, in the runtime's terms: a feature created
   * or deleted meanwhile is a `conflict`; an unknown environment or project, or a
   * missing owner, is `invalid_config` naming the setting.
   */
  private writeError(error: unknown, key: string): unknown {
    if (!(error instanceof FlagProviderError) || error.details.status !== 400) return error;
    const options = { details: { ...error.details }, cause: error };
    if (/already exists/iu.test(error.message)) {
      return new FlagProviderError(
        "conflict",
        `${TYPE} POST /api/v1/features: the feature ${key} was created meanwhile; read it again`,
        options,
      );
    }
    if (isMissing(error)) {
      return new FlagProviderError(
        "conflict",
        `${TYPE}: the feature ${key} was deleted meanwhile; read it again`,
        options,
      );
    }
    if (/environment/iu.test(error.message) && /not recognized|unknown environment/iu.test(error.message)) {
      return invalidSetting(
        TYPE,
        "environment",
        `GrowthBook has no environment ${show(this.settings.environment)}`,
        "write the id of an environment of the organization (SDK Configuration → Environments)",
      );
    }
    if (/project id .* not a valid project/iu.test(error.message)) {
      return invalidSetting(
        TYPE,
        "project",
        `GrowthBook has no project ${show(this.settings.project)}`,
        "write a project id from Settings → Projects (prj_...), or leave it out",
      );
    }
    if (/specify an `?owner/iu.test(error.message)) {
      return invalidSetting(
        TYPE,
        "owner",
        "GrowthBook requires an owner for features created with an organization Secret Key",
        "write the email of the GrowthBook member who owns the flags, or use a Personal Access Token",
      );
    }
    return error;
  }

  /**
   * Serve `weights` (fractions by arm name, summing to 1; an arm left out gets
   * 0) on the existing feature, the rule enabled and the environment on.
   *
   * @throws FlagProviderError `not_found` when the feature does not exist, `invalid_config` for bad weights
   */
  async setWeights(
    target: FlagTarget,
    weights: Readonly<Record<string, number>>,
    signal: AbortSignal,
  ): Promise<FlagChange> {
    const what = `${TYPE} setWeights ${target.key}`;
    const names = checkTarget(target, what);
    const scaled = toGrowthBookWeights(names, weights, what);
    const feature = await this.getFeature(target.key, signal);
    if (feature === null) throw this.missing(target.key, what);
    return this.reconcile(feature, target, names, scaled, true, signal);
  }

  /**
   * The kill: disable the experiment rule (its weights kept) and keep the
   * environment on, so every unit gets the default value, the control arm.
   * No write when the environment is on and no rule is enabled and the default
   * is control already.
   *
   * @throws FlagProviderError `not_found` when the feature does not exist
   */
  async disable(target: FlagTarget, signal: AbortSignal): Promise<FlagChange> {
    const what = `${TYPE} disable ${target.key}`;
    const names = checkTarget(target, what);
    const feature = await this.getFeature(target.key, signal);
    if (feature === null) throw this.missing(target.key, what);
    this.checkOwnership(feature, what);
    const env = feature.environments[this.settings.environment];
    if (
      env?.enabled === true &&
      !feature.archived &&
      feature.defaultValue === names[0] &&
      env.rules.every((r) => !r.enabled)
    ) {
      return {
        status: "applied",
        at: new Date(),
        answer: { unchanged: true, feature: feature.id, version: feature.version },
      };
    }
    const rule = experimentRule(env?.rules ?? []);
    const kept =
      rule?.values !== undefined &&
      rule.values.length === names.length &&
      rule.values.every((v, i) => v.value === names[i]) &&
      Math.abs(rule.values.reduce((a, v) => a + v.weight, 0) - 1) < 1e-6
        ? Object.fromEntries(rule.values.map((v) => [v.value, v.weight]))
        : null;
    const weights = toGrowthBookWeights(
      names,
      kept ?? Object.fromEntries(target.arms.map((a) => [a.name, a.weight])),
      what,
    );
    return this.reconcile(feature, target, names, weights, false, signal);
  }

  private missing(key: string, what: string): FlagProviderError {
    return new FlagProviderError(
      "not_found",
      `${what}: GrowthBook has no feature ${key}${this.settings.project === "" ? "" : ` in project ${this.settings.project}`}; ensure the flag first`,
      { details: { feature: key } },
    );
  }

  /**
   * What GrowthBook serves for each key in the environment: the project's
   * features listed 100 a page; when fewer keys are left than pages, those
   * keys are fetched one by one. A key GrowthBook does not know (or in another
   * project) is `exists: false`; a feature off in the environment or archived
   * is `enabled: false` with no weights (the SDK then serves the
   * application's fallback).
   *
   * @throws FlagProviderError the HTTP codes; `bad_response` for an answer not in the documented shape
   */
  async read(keys: readonly string[], signal: AbortSignal): Promise<ReadonlyMap<string, ServedFlag>> {
    const wanted = new Set(keys);
    const out = new Map<string, ServedFlag>();
    let offset = 0;
    while (wanted.size > 0) {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(offset) });
      if (this.settings.project !== "") query.set("projectId", this.settings.project);
      const { body, what } = await this.call("GET", `/api/v1/features?${query}`, signal);
      const page = parsePage(body, what);
      for (const feature of page.features) {
        if (!wanted.has(feature.id)) continue;
        out.set(feature.id, servedOf(feature, this.settings));
        wanted.delete(feature.id);
      }
      if (wanted.size === 0 || !page.hasMore || page.nextOffset === null) break;
      if (page.nextOffset <= offset) throw badShape(what, "nextOffset", `is ${page.nextOffset}, not past ${offset}`);
      const pagesLeft = Math.ceil(Math.max(0, page.total - page.nextOffset) / PAGE_SIZE);
      if (wanted.size < pagesLeft) {
        for (const key of [...wanted]) {
          const feature = FEATURE_KEY.test(key) ? await this.getFeature(key, signal) : null;
          const inProject =
            feature !== null && (this.settings.project === "" || feature.project === this.settings.project);
          if (inProject) out.set(key, servedOf(feature, this.settings));
          wanted.delete(key);
        }
        break;
      }
      offset = page.nextOffset;
    }
    for (const key of keys) if (!out.has(key)) out.set(key, MISSING);
    return out;
  }
}

function isMissing(error: FlagProviderError): boolean {
  const status = error.details.status;
  return status === 404 || (status === 400 && /could not find a feature|not found/iu.test(error.message));
}

function parsePage(
  body: unknown,
  what: string,
): { features: GbFeature[]; hasMore: boolean; nextOffset: number | null; total: number } {
  if (!isRecord(body)) throw badShape(what, "the answer", "is not an object");
  if (!Array.isArray(body.features)) throw badShape(what, "features", "is not an array");
  if (typeof body.hasMore !== "boolean") throw badShape(what, "hasMore", "is not a boolean");
  if (body.nextOffset !== null && (typeof body.nextOffset !== "number" || !Number.isInteger(body.nextOffset))) {
    throw badShape(what, "nextOffset", "is not an integer or null");
  }
  if (typeof body.total !== "number") throw badShape(what, "total", "is not a number");
  return {
    features: body.features.map((f, i) => parseFeature(f, what, `features[${i}]`)),
    hasMore: body.hasMore,
    nextOffset: body.nextOffset as number | null,
    total: body.total,
  };
}

// ---- snippets ----

function snippet(language: SnippetLanguage, flag: FlagTarget): string {
  const key = JSON.stringify(flag.key);
  const names = flag.arms.map((a) => a.name);
  const control = JSON.stringify(names[0] ?? "control");
  switch (language) {
    case "typescript": {
      const cases = names.map((n) => `    case ${JSON.stringify(n)}:\n      // ${n}\n      break;`).join("\n");
      return `import { GrowthBook } from "@growthbook/growthbook";

// The arm GrowthBook assigns this user in experiment ${JSON.stringify(flag.experimentKey)}.
// Hash attribute: "id" unless flags.hash_attribute names another.
export async function armFor(userId: string): Promise<string> {
  const gb = new GrowthBook({
    apiHost: process.env.GROWTHBOOK_API_HOST ?? "https://cdn.growthbook.io",
    clientKey: process.env.GROWTHBOOK_CLIENT_KEY ?? "", // an SDK Connection key (sdk-...) for the environment
    attributes: { id: userId },
  });
  try {
    await gb.init({ timeout: 2000 });
    return gb.getFeatureValue(${key}, ${control});
  } finally {
    gb.destroy();
  }
}

export async function handle(userId: string): Promise<void> {
  const arm = await armFor(userId);
  switch (arm) {
${cases}
    default:
      // unknown value: treat as control
      break;
  }
}
`;
    }
    case "python": {
      const branches = names
        .map((n, i) => `    ${i === 0 ? "if" : "elif"} arm == ${JSON.stringify(n)}:\n        pass  # ${n}`)
        .join("\n");
      return `import os

from growthbook import GrowthBook


def arm_for(user_id: str) -> str:
    """The arm GrowthBook assigns this user in experiment ${JSON.stringify(flag.experimentKey)}.

    Hash attribute: "id" unless flags.hash_attribute names another.
    """
    gb = GrowthBook(
        api_host=os.environ.get("GROWTHBOOK_API_HOST", "https://cdn.growthbook.io"),
        client_key=os.environ["GROWTHBOOK_CLIENT_KEY"],  # an SDK Connection key (sdk-...)
        attributes={"id": user_id},
    )
    try:
        gb.load_features()
        return gb.get_feature_value(${key}, ${control})
    finally:
        gb.destroy()


def handle(user_id: str) -> None:
    arm = arm_for(user_id)
${branches}
    else:
        pass  # unknown value: treat as control
`;
    }
    case "go": {
      const cases = names.map((n) => `\tcase ${JSON.stringify(n)}:\n\t\t// ${n}`).join("\n");
      return `package experiments

import (
\t"context"
\t"os"
\t"time"

\tgb "github.com/growthbook/growthbook-golang"
)

// NewGrowthBook creates the process's one client; close it at shutdown.
func NewGrowthBook(ctx context.Context) (*gb.Client, error) {
\thost := os.Getenv("GROWTHBOOK_API_HOST")
\tif host == "" {
\t\thost = "https://cdn.growthbook.io"
\t}
\tclient, err := gb.NewClient(ctx,
\t\tgb.WithApiHost(host),
\t\tgb.WithClientKey(os.Getenv("GROWTHBOOK_CLIENT_KEY")), // an SDK Connection key (sdk-...)
\t\tgb.WithPollDataSource(30*time.Second),
\t)
\tif err != nil {
\t\treturn nil, err
\t}
\tif err := client.EnsureLoaded(ctx); err != nil {
\t\tclient.Close()
\t\treturn nil, err
\t}
\treturn client, nil
}

// ArmFor is the arm GrowthBook assigns this user in experiment ${JSON.stringify(flag.experimentKey)}.
// Hash attribute: "id" unless flags.hash_attribute names another.
func ArmFor(ctx context.Context, client *gb.Client, userID string) string {
\tchild, err := client.WithAttributes(gb.Attributes{"id": userID})
\tif err != nil {
\t\treturn ${control}
\t}
\tif arm, ok := child.EvalFeature(ctx, ${key}).Value.(string); ok {
\t\treturn arm
\t}
\treturn ${control}
}

func Handle(ctx context.Context, client *gb.Client, userID string) {
\tswitch ArmFor(ctx, client, userID) {
${cases}
\tdefault:
\t\t// unknown value: treat as control
\t}
}
`;
    }
  }
}

/** The `growthbook` provider module: settings `api_url`, `project`, `environment`, `hash_attribute`, `owner`; credential `api_key`. */
export const growthbookProvider: FlagProviderModule = {
  type: TYPE,
  credentials: [
    {
      credential: "api_key",
      what: "a GrowthBook Secret Key (secret_..., admin role) or Personal Access Token that may create, edit and publish features",
    },
  ],
  documentedApiUrls: GROWTHBOOK_API_URLS,
  /**
   * Validate the settings and bind a provider.
   *
   * @throws FlagProviderError `invalid_config` naming `flags.<field>`; `provider_refused` for an `api_url`
   *   neither documented nor allowed
   */
  create(settings, context) {
    const parsed = readSettings(settings, context);
    const apiKey = readApiKey(context);
    return new GrowthBookProvider(parsed, apiKey, context.fetch);
  },
  snippet,
};
