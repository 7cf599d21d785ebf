/**
 * Unleash (self-hosted or Unleash Cloud) as the experiment's flag tool,
 * through its Admin API (https://docs.getunleash.io/reference/api/unleash;
 * the OpenAPI document a server serves at `/docs/openapi.json`). Written
 * against Unleash 7.5.
 *
 * How the split is served: the flag (an Unleash feature flag of type
 * `experiment`, named by the flag key) has, in the configured environment,
 * ONE strategy the runtime owns, titled {@link STRATEGY_TITLE}: a
 * `flexibleRollout` at 100 %, no constraints, no segments, `groupId` = the
 * flag key, `stickiness` = `flags.stickiness`, with one strategy variant per
 * arm (named by the arm) whose weights are per mille (the arms' fractions
 * rounded by largest remainder so they sum to exactly 1000). Every variant but
 * the last is `weightType: "fix"` and the last `"variable"` (Unleash spreads
 * the rest of 1000 evenly over the variable variants, so this one variable
 * variant receives exactly its share; Unleash requires at least one). The
 * environment is on, and the runtime's strategy is the first one Unleash
 * evaluates (a strategy someone added by hand keeps its place after it).
 *
 * The kill ({@link FlagProvider.disable}): the same strategy with control at
 * 1000 and every other arm at 0 (Unleash accepts a 0 weight and its SDKs
 * never pick a 0-weight variant), the environment left on. Every unit then
 * gets the control variant from the SDK, the same way it got its arm; `read`
 * reports `{control: 1, others: 0}`. A flag that is off in the environment
 * also serves everyone control (the SDK answers the `disabled` variant and
 * the snippet falls back to control), so `read` reports it the same way, with
 * `enabled: false`.
 *
 * Drift: `read` reports the weights Unleash would serve. The first enabled
 * strategy (by sort order) decides; when it matches everyone (no
 * constraints, no segments, `default` or a `flexibleRollout` at 100 %) and
 * has variants, its variant weights are served, the runtime's or not (a
 * strategy someone put first by hand is reported by the weights it implies).
 * A first strategy that targets only some units (constraints, segments, a
 * rollout below 100 %), or one without variants, serves something the
 * runtime cannot express: `weights: null`. `ensureFlag`/`setWeights` then
 * put the runtime's strategy back first. An archived flag does not exist.
 *
 * Endpoints (under the API URL, `https://unleash.example.com/api`):
 * - `GET /admin/projects/{project}/features` — the project's flags, one
 *   request for every key of a `read`
 *   (https://docs.getunleash.io/reference/api/unleash/get-features);
 * - `GET /admin/projects/{project}/features/{key}/environments/{environment}`
 *   — a listed flag's strategies in the environment, one per listed key:
 *   the list does not carry strategies and no other read does for several
 *   flags at once (the export endpoint does, but writes an audit event per
 *   call) (https://docs.getunleash.io/reference/api/unleash/get-feature-environment);
 * - `GET /admin/projects/{project}/features/{key}` — the flag before a write
 *   (https://docs.getunleash.io/reference/api/unleash/get-feature);
 * - `POST /admin/projects/{project}/features` — create the flag
 *   (https://docs.getunleash.io/reference/api/unleash/create-feature);
 * - `POST .../environments/{environment}/strategies` and
 *   `PUT .../strategies/{strategyId}` — add / update the runtime's strategy
 *   (https://docs.getunleash.io/reference/api/unleash/add-feature-strategy,
 *   https://docs.getunleash.io/reference/api/unleash/update-feature-strategy);
 * - `POST .../strategies/set-sort-order` — put it first
 *   (https://docs.getunleash.io/reference/api/unleash/set-strategy-sort-order);
 * - `POST .../environments/{environment}/on` — turn the flag on
 *   (https://docs.getunleash.io/reference/api/unleash/toggle-feature-environment-on).
 *
 * Token (`api_token`, sent as the `Authorization` header): an admin API
 * token, or a personal access token of a user whose project role in
 * `flags.project` may create feature flags, update them, create and update
 * their strategies (with variants) in `flags.environment`, and turn them on
 * there (Unleash's project "Member" role has all of these; in a production
 * environment with change requests on, the writes need an approval, which
 * this provider does not drive). Client (backend) and frontend tokens are
 * refused by the Admin API (403).
 *
 * Rate limits: Unleash does not rate-limit the Admin API (its limits cover
 * login, user creation and the metrics endpoints); a proxy in front of it
 * may answer 429, whose `Retry-After` is honoured (`retryAfterMs`).
 */
import { requestJson } from "../http";
import type { FlagArm, FlagChange, FlagProvider, FlagProviderContext, FlagTarget, ServedFlag } from "../provider";
import { FlagProviderError } from "../provider";
import type { FlagProviderModule, SnippetLanguage } from "../provider-module";
import { apiUrlSetting, invalidSetting, show, stringSetting } from "../settings";

const TYPE = "unleash";

/** The title of the strategy the runtime owns in the environment; how it tells its strategy from others. */
export const STRATEGY_TITLE = "outcome-runtime split";

/** Unleash's whole for variant weights: per mille. */
const UNLEASH_WEIGHT_TOTAL = 1000;

/** Project and environment names: Unleash's URL-friendly ids. */
const ID_PATTERN = /^[A-Za-z0-9_.~-]{1,100}$/u;
/** `default`, `userId`, `sessionId`, `random` or a custom context field's name. */
const STICKINESS_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,99}$/u;
/** Requests in flight at once for the per-flag reads of {@link FlagProvider.read}. */
const READ_CONCURRENCY = 4;

/** How long after the second of an answer's `Date` header it may arrive and still be read by our clock, ms. */
const DATE_HEADER_SLACK_MS = 2_000;

/**
 * When Unleash confirmed a write: the answer's `Date` header counts whole seconds, so when our clock at the
 * answer falls in that second (or within {@link DATE_HEADER_SLACK_MS} after it) the two clocks agree and ours
 * says the instant to the millisecond; otherwise (no header, or clocks that disagree) the server's second.
 */
export function confirmedAt(dateHeader: string | null, answeredAtMs: number): Date {
  const server = dateHeader === null ? Number.NaN : Date.parse(dateHeader);
  if (!Number.isFinite(server) || (answeredAtMs >= server && answeredAtMs < server + 1000 + DATE_HEADER_SLACK_MS)) {
    return new Date(answeredAtMs);
  }
  return new Date(server);
}

/**
 * Fractions (summing to 1) as Unleash per-mille weights summing to exactly
 * 1000: floors, then the largest remainders get the missing units (ties: the
 * earlier arm).
 */
export function toPerMille(fractions: readonly number[]): number[] {
  const sum = fractions.reduce((a, b) => a + b, 0);
  const raw = fractions.map((f) => (sum > 0 ? (f / sum) * UNLEASH_WEIGHT_TOTAL : 0));
  const floors = raw.map((r) => Math.floor(r + 1e-9));
  let missing = UNLEASH_WEIGHT_TOTAL - floors.reduce((a, b) => a + b, 0);
  const order = raw.map((r, i) => ({ i, rest: r - floors[i]! })).sort((a, b) => b.rest - a.rest || a.i - b.i);
  for (const { i } of order) {
    if (missing <= 0) break;
    floors[i]! += 1;
    missing -= 1;
  }
  return floors;
}

// ---------------------------------------------------------------------------------------------------------------
// The Admin API's answers, checked

interface UnleashVariant {
  readonly name: string;
  readonly weight: number;
  readonly weightType: string | null;
  readonly stickiness: string | null;
}

interface UnleashStrategy {
  readonly id: string;
  readonly name: string;
  readonly title: string | null;
  readonly disabled: boolean;
  readonly sortOrder: number;
  readonly constraints: readonly unknown[];
  readonly segments: readonly unknown[];
  readonly parameters: Readonly<Record<string, unknown>>;
  readonly variants: readonly UnleashVariant[];
}

interface UnleashEnvironment {
  readonly enabled: boolean;
  readonly strategies: readonly UnleashStrategy[];
}

function bad(what: string, field: string, value: unknown, expected: string): FlagProviderError {
  return new FlagProviderError("bad_response", `${what}: ${field} is ${show(value)}, not ${expected}`, {
    details: { call: what, field },
  });
}

function record(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseVariant(value: unknown, what: string, at: string): UnleashVariant {
  if (!record(value)) throw bad(what, at, value, "a variant object");
  if (typeof value.name !== "string") throw bad(what, `${at}.name`, value.name, "a string");
  if (typeof value.weight !== "number" || !Number.isFinite(value.weight) || value.weight < 0) {
    throw bad(what, `${at}.weight`, value.weight, "a weight 0..1000");
  }
  return {
    name: value.name,
    weight: value.weight,
    weightType: typeof value.weightType === "string" ? value.weightType : null,
    stickiness: typeof value.stickiness === "string" ? value.stickiness : null,
  };
}

function parseStrategy(value: unknown, what: string, at: string): UnleashStrategy {
  if (!record(value)) throw bad(what, at, value, "a strategy object");
  if (typeof value.id !== "string") throw bad(what, `${at}.id`, value.id, "a strategy id");
  if (typeof value.name !== "string") throw bad(what, `${at}.name`, value.name, "a strategy name");
  const list = (field: string): unknown[] => {
    const v = value[field];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw bad(what, `${at}.${field}`, v, "an array");
    return v;
  };
  const parameters = value.parameters ?? {};
  if (!record(parameters)) throw bad(what, `${at}.parameters`, parameters, "an object");
  return {
    id: value.id,
    name: value.name,
    title: typeof value.title === "string" ? value.title : null,
    disabled: value.disabled === true,
    sortOrder: typeof value.sortOrder === "number" ? value.sortOrder : 0,
    constraints: list("constraints"),
    segments: list("segments"),
    parameters,
    variants: list("variants").map((v, i) => parseVariant(v, what, `${at}.variants[${i}]`)),
  };
}

function parseEnvironment(value: unknown, what: string, at: string): UnleashEnvironment {
  if (!record(value)) throw bad(what, at || "the answer", value, "a feature environment object");
  const prefix = at === "" ? "" : `${at}.`;
  if (typeof value.enabled !== "boolean") throw bad(what, `${prefix}enabled`, value.enabled, "a boolean");
  const strategies = value.strategies ?? [];
  if (!Array.isArray(strategies)) throw bad(what, `${prefix}strategies`, strategies, "an array");
  return {
    enabled: value.enabled,
    strategies: strategies.map((s, i) => parseStrategy(s, what, `${prefix}strategies[${i}]`)),
  };
}

/** Strategies as Unleash evaluates them: enabled ones, by sort order (the server's order breaks ties). */
function evaluated(strategies: readonly UnleashStrategy[]): UnleashStrategy[] {
  return strategies
    .map((s, i) => ({ s, i }))
    .filter(({ s }) => !s.disabled)
    .sort((a, b) => a.s.sortOrder - b.s.sortOrder || a.i - b.i)
    .map(({ s }) => s);
}

/** A strategy every unit matches: no constraints or segments, `default` or a 100 % `flexibleRollout`. */
function matchesEveryone(s: UnleashStrategy): boolean {
  if (s.constraints.length > 0 || s.segments.length > 0) return false;
  if (s.name === "default") return true;
  return s.name === "flexibleRollout" && Number(s.parameters.rollout) === 100;
}

function ownStrategy(env: UnleashEnvironment): UnleashStrategy | undefined {
  return env.strategies.find((s) => s.title === STRATEGY_TITLE && s.name === "flexibleRollout");
}

/** What the environment serves, as {@link ServedFlag} fields (see the module docstring on drift). */
function served(env: UnleashEnvironment): Pick<ServedFlag, "enabled" | "variations" | "weights"> {
  const active = evaluated(env.strategies);
  const own = ownStrategy(env);
  const first = active[0];
  const source = own ?? (first !== undefined && matchesEveryone(first) ? first : undefined);
  const variations = source === undefined ? [] : unique(source.variants.map((v) => v.name));
  if (!env.enabled) {
    // Off: the SDK answers the `disabled` variant; the application falls back to control (the first variation).
    const weights =
      variations.length === 0 ? null : Object.fromEntries(variations.map((name, i) => [name, i === 0 ? 1 : 0]));
    return { enabled: false, variations, weights };
  }
  if (first === undefined || !matchesEveryone(first)) return { enabled: true, variations, weights: null };
  const total = first.variants.reduce((a, v) => a + v.weight, 0);
  if (total <= 0) return { enabled: true, variations, weights: null };
  const weights: Record<string, number> = {};
  for (const v of first.variants) weights[v.name] = (weights[v.name] ?? 0) + v.weight / total;
  return { enabled: true, variations: unique(first.variants.map((v) => v.name)), weights };
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names)];
}

// ---------------------------------------------------------------------------------------------------------------
// Settings and targets

interface UnleashSettings {
  readonly api: string;
  readonly project: string;
  readonly environment: string;
  readonly stickiness: string;
  readonly token: string;
}

function readSettings(settings: Readonly<Record<string, unknown>>, context: FlagProviderContext): UnleashSettings {
  const project = stringSetting(
    TYPE,
    settings,
    "project",
    ID_PATTERN,
    "an Unleash project id (letters, digits, `_.~-`), e.g. `default`",
    "default",
  );
  const environment = stringSetting(
    TYPE,
    settings,
    "environment",
    ID_PATTERN,
    "the Unleash environment the split is served in, e.g. `production`",
  );
  const stickiness = stringSetting(
    TYPE,
    settings,
    "stickiness",
    STICKINESS_PATTERN,
    "`default`, `userId`, `sessionId`, `random` or a context field's name",
    "default",
  );
  const token = context.credentials.api_token;
  if (token === undefined || token.trim() === "") {
    throw invalidSetting(
      TYPE,
      "api_token_env",
      "names no token (the credential `api_token` is missing or empty)",
      "set flags.api_token_env (or flags.api_token_secret) to an Unleash admin API token or personal access token",
    );
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a header value must not carry control characters
  if (/[\u0000-\u001f\u007f]/u.test(token)) {
    throw invalidSetting(
      TYPE,
      "api_token_env",
      "the token contains a line break or another control character (value not shown)",
      "store the token alone, without a trailing newline",
    );
  }
  const url = apiUrlSetting(TYPE, settings, [], context.allowedApiUrls);
  // The API URL as the SDKs take it ends in `/api`; the instance's base URL is accepted too.
  const api = url.endsWith("/api") ? url : `${url}/api`;
  return { api, project, environment, stickiness, token };
}

function checkTarget(target: FlagTarget, call: string): void {
  const arms = target.arms;
  const fix = "give the flag one arm or more, named uniquely, the control first";
  if (typeof target.key !== "string" || target.key === "" || target.key.length > 100) {
    throw new FlagProviderError(
      "invalid_config",
      `unleash ${call}: flag key ${show(target.key)} is not a name; ${fix}`,
    );
  }
  if (!Array.isArray(arms) || arms.length === 0) {
    throw new FlagProviderError("invalid_config", `unleash ${call} ${target.key}: no arms; ${fix}`);
  }
  const names = new Set<string>();
  for (const arm of arms) {
    if (typeof arm.name !== "string" || arm.name === "" || names.has(arm.name)) {
      throw new FlagProviderError(
        "invalid_config",
        `unleash ${call} ${target.key}: arm name ${show(arm.name)} is empty or repeated; ${fix}`,
      );
    }
    names.add(arm.name);
  }
}

/** The arms' fractions in arm order, checked: each 0..1, every arm named, nothing else, summing to 1. */
function fractionsOf(target: FlagTarget, weights: Readonly<Record<string, number>>, call: string): number[] {
  const fix = `give a fraction 0..1 for each arm (${target.arms.map((a) => a.name).join(", ")}) summing to 1`;
  const fail = (problem: string) =>
    new FlagProviderError("invalid_config", `unleash ${call} ${target.key}: ${problem}; ${fix}`, {
      details: { flag: target.key, weights },
    });
  for (const name of Object.keys(weights)) {
    if (!target.arms.some((a) => a.name === name)) throw fail(`weight for ${show(name)}, which is not an arm`);
  }
  const fractions = target.arms.map((arm) => {
    const w = weights[arm.name];
    if (typeof w !== "number" || !Number.isFinite(w) || w < 0 || w > 1) {
      throw fail(`the weight of arm ${show(arm.name)} is ${show(w)}`);
    }
    return w;
  });
  const sum = fractions.reduce((a, b) => a + b, 0);
  if (Math.abs(sum - 1) > 1e-6) throw fail(`the weights sum to ${sum}`);
  return fractions;
}

function armWeights(arms: readonly FlagArm[]): Record<string, number> {
  return Object.fromEntries(arms.map((a) => [a.name, a.weight]));
}

// ---------------------------------------------------------------------------------------------------------------
// The provider

class UnleashProvider implements FlagProvider {
  readonly type = TYPE;
  readonly describe: string;

  constructor(
    private readonly settings: UnleashSettings,
    private readonly fetchFn: typeof fetch,
  ) {
    this.describe = `${TYPE} ${settings.project}/${settings.environment}`;
  }

  private featurePath(key: string): string {
    return `/admin/projects/${encodeURIComponent(this.settings.project)}/features/${encodeURIComponent(key)}`;
  }

  private environmentPath(key: string): string {
    return `${this.featurePath(key)}/environments/${encodeURIComponent(this.settings.environment)}`;
  }

  private async call(
    method: "GET" | "POST" | "PUT",
    path: string,
    body: unknown,
    signal: AbortSignal,
  ): Promise<{ readonly what: string; readonly headers: Headers; readonly body: unknown }> {
    const what = `unleash ${method} /api${path}`;
    try {
      const answer = await requestJson(
        this.fetchFn,
        {
          method,
          url: `${this.settings.api}${path}`,
          headers: { authorization: this.settings.token },
          ...(body === undefined ? {} : { body }),
          what,
        },
        signal,
      );
      return { what, headers: answer.headers, body: answer.body };
    } catch (error) {
      throw this.redacted(error);
    }
  }

  /** The error without the token, should a server or proxy have quoted it back in its answer. */
  private redacted(error: unknown): unknown {
    const { token } = this.settings;
    if (!(error instanceof FlagProviderError) || !error.message.includes(token)) return error;
    return new FlagProviderError(error.code, error.message.replaceAll(token, "<api_token>"), {
      retryable: error.retryable,
      retryAfterMs: error.retryAfterMs,
      details: error.details,
    });
  }

  private missingEnvironment(key: string): FlagProviderError {
    const { project, environment } = this.settings;
    return new FlagProviderError(
      "not_found",
      `unleash: flags.environment: environment ${show(environment)} is not enabled in project ${show(project)} (flag ${show(key)}); enable it in the project's settings or fix flags.environment`,
      { details: { flag: key, project, environment, field: "flags.environment" } },
    );
  }

  /** The flag's state in the environment, or null when it does not exist (or is archived). */
  private async loadForWrite(key: string, signal: AbortSignal): Promise<UnleashEnvironment | null> {
    let answer: Awaited<ReturnType<UnleashProvider["call"]>>;
    try {
      answer = await this.call("GET", this.featurePath(key), undefined, signal);
    } catch (error) {
      if (error instanceof FlagProviderError && error.code === "not_found") return null;
      throw error;
    }
    const { what, body } = answer;
    if (!record(body)) throw bad(what, "the answer", body, "a feature object");
    if (body.name !== key) throw bad(what, "name", body.name, `the flag's key ${show(key)}`);
    if (body.archived === true) return null;
    if (!Array.isArray(body.environments)) throw bad(what, "environments", body.environments, "an array");
    const index = body.environments.findIndex((e) => record(e) && e.name === this.settings.environment);
    if (index < 0) throw this.missingEnvironment(key);
    return parseEnvironment(body.environments[index], what, `environments[${index}]`);
  }

  /** The strategy the runtime wants for these per-mille weights. */
  private desiredStrategy(target: FlagTarget, perMille: readonly number[]) {
    const { stickiness } = this.settings;
    const last = target.arms.length - 1;
    return {
      name: "flexibleRollout",
      title: STRATEGY_TITLE,
      disabled: false,
      constraints: [],
      segments: [],
      parameters: { rollout: "100", stickiness, groupId: target.key },
      variants: target.arms.map((arm, i) => ({
        name: arm.name,
        weight: perMille[i]!,
        weightType: i === last ? "variable" : "fix",
        stickiness,
      })),
    };
  }

  private strategyMatches(s: UnleashStrategy, target: FlagTarget, perMille: readonly number[]): boolean {
    const { stickiness } = this.settings;
    return (
      !s.disabled &&
      s.constraints.length === 0 &&
      s.segments.length === 0 &&
      Number(s.parameters.rollout) === 100 &&
      s.parameters.stickiness === stickiness &&
      s.parameters.groupId === target.key &&
      s.variants.length === target.arms.length &&
      s.variants.every(
        (v, i) => v.name === target.arms[i]!.name && v.weight === perMille[i] && v.stickiness === stickiness,
      )
    );
  }

  /**
   * Read → compare → write: make the flag serve `fractions` (arm order) in
   * the environment through the runtime's strategy, first and on.
   */
  private async apply(
    target: FlagTarget,
    fractions: readonly number[],
    mode: { readonly create: boolean; readonly call: string },
    signal: AbortSignal,
  ): Promise<FlagChange> {
    const { project, environment } = this.settings;
    const perMille = toPerMille(fractions);
    const weightsAnswer = Object.fromEntries(target.arms.map((a, i) => [a.name, perMille[i]]));
    const base = { flag: target.key, project, environment, perMille: weightsAnswer };
    const writes: string[] = [];
    let lastDate: string | null = null;
    let lastAnsweredAt = Date.now();
    const write = async (method: "POST" | "PUT", path: string, body: unknown) => {
      const answer = await this.call(method, path, body, signal);
      writes.push(`${method} /api${path}`);
      lastDate = answer.headers.get("date");
      lastAnsweredAt = Date.now();
      return answer;
    };

    let env = await this.loadForWrite(target.key, signal);
    let created = false;
    if (env === null) {
      if (!mode.create) {
        throw new FlagProviderError(
          "not_found",
          `unleash ${mode.call}: flag ${show(target.key)} does not exist in project ${show(project)} (deleted or archived); ensureFlag creates it again`,
          { details: { flag: target.key, project } },
        );
      }
      await this.createFlag(target, write);
      created = true;
      env = { enabled: false, strategies: [] };
    }

    const desired = this.desiredStrategy(target, perMille);
    let own = ownStrategy(env);
    if (own === undefined) {
      const others = env.strategies.map((s) => s.sortOrder);
      const sortOrder = others.length === 0 ? 0 : Math.min(...others) - 1;
      const { what, body } = await this.strategyWrite(target.key, () =>
        write("POST", `${this.environmentPath(target.key)}/strategies`, { ...desired, sortOrder }),
      );
      own = parseStrategy(body, what, "the answer");
      env = { enabled: env.enabled, strategies: [own, ...env.strategies] };
    } else if (!this.strategyMatches(own, target, perMille)) {
      const id = own.id;
      const { what, body } = await this.strategyWrite(target.key, () =>
        write("PUT", `${this.environmentPath(target.key)}/strategies/${encodeURIComponent(id)}`, {
          ...desired,
          sortOrder: own!.sortOrder,
        }),
      );
      const updated = parseStrategy(body, what, "the answer");
      env = { enabled: env.enabled, strategies: env.strategies.map((s) => (s.id === id ? updated : s)) };
      own = updated;
    }

    if (evaluated(env.strategies)[0]?.id !== own.id) {
      const ownId = own.id;
      const order = [own, ...env.strategies.filter((s) => s.id !== ownId)];
      await this.strategyWrite(target.key, () =>
        write(
          "POST",
          `${this.environmentPath(target.key)}/strategies/set-sort-order`,
          order.map((s, i) => ({ id: s.id, sortOrder: i })),
        ),
      );
    }

    if (!env.enabled) {
      await this.strategyWrite(target.key, () => write("POST", `${this.environmentPath(target.key)}/on`, undefined));
    }

    if (writes.length === 0) {
      return { status: "applied", at: new Date(), answer: { ...base, strategyId: own.id, unchanged: true } };
    }
    return {
      status: "applied",
      at: confirmedAt(lastDate, lastAnsweredAt),
      answer: { ...base, strategyId: own.id, created, writes, unchanged: false },
    };
  }

  private async createFlag(
    target: FlagTarget,
    write: (method: "POST", path: string, body: unknown) => Promise<unknown>,
  ): Promise<void> {
    const { project } = this.settings;
    try {
      await write("POST", `/admin/projects/${encodeURIComponent(project)}/features`, {
        name: target.key,
        type: "experiment",
        description: target.description,
        impressionData: false,
      });
    } catch (error) {
      if (!(error instanceof FlagProviderError)) throw error;
      if (error.code === "not_found") {
        throw new FlagProviderError(
          "not_found",
          `${error.message}; flags.project: project ${show(project)} does not exist in Unleash: create it or fix flags.project`,
          { details: { ...error.details, project, field: "flags.project" }, cause: error },
        );
      }
      if (error.code === "conflict") {
        throw new FlagProviderError(
          "conflict",
          `${error.message}; a flag named ${show(target.key)} exists elsewhere or in the archive: revive it into project ${show(project)} or delete it from the archive`,
          { retryable: false, details: { ...error.details, flag: target.key }, cause: error },
        );
      }
      throw error;
    }
  }

  /** A write on the environment; its 404 names the environment (the flag was just read or created). */
  private async strategyWrite<T>(key: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof FlagProviderError && error.code === "not_found") {
        const missing = this.missingEnvironment(key);
        throw new FlagProviderError("not_found", `${error.message}; ${missing.message.replace(/^unleash: /u, "")}`, {
          details: { ...error.details, ...missing.details },
          cause: error,
        });
      }
      throw error;
    }
  }

  /**
   * Create the flag if missing, with one strategy variant per arm at the
   * arms' weights, on in the environment. No write when it already serves
   * exactly that (`answer.unchanged: true`).
   *
   * @throws FlagProviderError `invalid_config` for a target without arms or with repeated names;
   *   `not_found` for a missing project or environment; `conflict` when an archived flag has the key;
   *   the HTTP codes of {@link requestJson}
   */
  async ensureFlag(target: FlagTarget, signal: AbortSignal): Promise<FlagChange> {
    checkTarget(target, "ensureFlag");
    const fractions = fractionsOf(target, armWeights(target.arms), "ensureFlag");
    return this.apply(target, fractions, { create: true, call: "ensureFlag" }, signal);
  }

  /**
   * Serve `weights` (fractions 0..1 by arm name, summing to 1) on the
   * existing flag, on in the environment.
   *
   * @throws FlagProviderError `invalid_config` for weights that do not cover exactly the arms or do not
   *   sum to 1; `not_found` when the flag does not exist; the HTTP codes of {@link requestJson}
   */
  async setWeights(
    target: FlagTarget,
    weights: Readonly<Record<string, number>>,
    signal: AbortSignal,
  ): Promise<FlagChange> {
    checkTarget(target, "setWeights");
    const fractions = fractionsOf(target, weights, "setWeights");
    return this.apply(target, fractions, { create: false, call: "setWeights" }, signal);
  }

  /**
   * The kill: control (the first arm) at 1000 per mille, every other arm at
   * 0, the flag on. `read` then reports `{control: 1, others: 0}`.
   *
   * @throws FlagProviderError `not_found` when the flag does not exist; the HTTP codes of {@link requestJson}
   */
  async disable(target: FlagTarget, signal: AbortSignal): Promise<FlagChange> {
    checkTarget(target, "disable");
    const fractions = target.arms.map((_, i) => (i === 0 ? 1 : 0));
    return this.apply(target, fractions, { create: false, call: "disable" }, signal);
  }

  /**
   * What Unleash serves for each key: one request listing the project's
   * flags, then one per listed key for its strategies in the environment
   * (at most {@link READ_CONCURRENCY} at once). A key not listed (never
   * created, deleted, archived) is `exists: false` without a request.
   * `version` is the ETag of the environment's answer.
   *
   * @throws FlagProviderError `not_found` when a listed flag lacks the environment; `bad_response` for an
   *   answer not in the documented shape; the HTTP codes of {@link requestJson}
   */
  async read(keys: readonly string[], signal: AbortSignal): Promise<ReadonlyMap<string, ServedFlag>> {
    const result = new Map<string, ServedFlag>();
    const wanted = unique(keys);
    if (wanted.length === 0) return result;
    const listPath = `/admin/projects/${encodeURIComponent(this.settings.project)}/features`;
    const { what, body } = await this.call("GET", listPath, undefined, signal);
    if (!record(body)) throw bad(what, "the answer", body, "an object with `features`");
    if (!Array.isArray(body.features)) throw bad(what, "features", body.features, "an array");
    const listed = new Map<string, Record<string, unknown>>();
    body.features.forEach((feature, i) => {
      if (!record(feature) || typeof feature.name !== "string") {
        throw bad(what, `features[${i}].name`, record(feature) ? feature.name : feature, "a flag name");
      }
      listed.set(feature.name, feature);
    });

    const absent: ServedFlag = { exists: false, enabled: false, variations: [], weights: null, version: null };
    const present: string[] = [];
    for (const key of wanted) {
      const feature = listed.get(key);
      if (feature === undefined || feature.archived === true) {
        result.set(key, absent);
        continue;
      }
      const envs = feature.environments;
      if (Array.isArray(envs) && !envs.some((e) => record(e) && e.name === this.settings.environment)) {
        throw this.missingEnvironment(key);
      }
      present.push(key);
    }

    let next = 0;
    const worker = async () => {
      while (next < present.length) {
        const key = present[next++]!;
        result.set(key, await this.readOne(key, signal));
      }
    };
    await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, present.length) }, worker));
    return new Map(wanted.map((key) => [key, result.get(key) ?? absent]));
  }

  private async readOne(key: string, signal: AbortSignal): Promise<ServedFlag> {
    let answer: Awaited<ReturnType<UnleashProvider["call"]>>;
    try {
      answer = await this.call("GET", this.environmentPath(key), undefined, signal);
    } catch (error) {
      // Deleted between the list and this read.
      if (error instanceof FlagProviderError && error.code === "not_found") {
        return { exists: false, enabled: false, variations: [], weights: null, version: null };
      }
      throw error;
    }
    const env = parseEnvironment(answer.body, answer.what, "");
    return { exists: true, ...served(env), version: answer.headers.get("etag") };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Snippets

/** Text safe inside the snippets' comments and docstrings: one line, no comment or docstring end. */
function plain(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a control character would end the comment's line
  return text.replace(/[\u0000-\u001f\u007f\u2028\u2029]+/gu, " ").replace(/\*\/|"""/gu, "");
}

function tsSnippet(flag: FlagTarget): string {
  const control = flag.arms[0]?.name ?? "control";
  const cases = flag.arms
    .slice(1)
    .map((arm) => `    case ${JSON.stringify(arm.name)}:\n      // the ${plain(arm.name)} arm\n      break;`)
    .join("\n");
  return `import { initialize } from "unleash-client";

// UNLEASH_URL: the Unleash API URL (https://unleash.example.com/api);
// UNLEASH_API_TOKEN: a backend (client) token for the flag's environment.
const unleash = initialize({
  url: process.env.UNLEASH_URL ?? "",
  appName: "my-service",
  customHeaders: { Authorization: process.env.UNLEASH_API_TOKEN ?? "" },
});

/** The arm of experiment ${plain(flag.experimentKey)} for a user: the variant of flag ${plain(flag.key)}. */
export function armFor(userId: string): string {
  const variant = unleash.getVariant(${JSON.stringify(flag.key)}, { userId });
  // Off, missing or not fetched yet: the SDK answers the "disabled" variant; serve control.
  return variant.enabled ? variant.name : ${JSON.stringify(control)};
}

export function handle(userId: string): void {
  switch (armFor(userId)) {
${cases}
    default:
      // ${plain(control)}: the control arm (also when the flag is off or missing)
      break;
  }
}
`;
}

function pySnippet(flag: FlagTarget): string {
  const control = flag.arms[0]?.name ?? "control";
  const branches = flag.arms
    .slice(1)
    .map(
      (arm, i) =>
        `    ${i === 0 ? "if" : "elif"} arm == ${JSON.stringify(arm.name)}:\n        pass  # the ${plain(arm.name)} arm`,
    )
    .join("\n");
  const note = `# ${plain(control)}: the control arm (also when the flag is off or missing)`;
  const tail = flag.arms.length > 1 ? `\n    else:\n        pass  ${note}` : `    pass  ${note}`;
  return `import os

from UnleashClient import UnleashClient

# UNLEASH_URL: the Unleash API URL (https://unleash.example.com/api);
# UNLEASH_API_TOKEN: a backend (client) token for the flag's environment.
client = UnleashClient(
    url=os.environ["UNLEASH_URL"],
    app_name="my-service",
    custom_headers={"Authorization": os.environ["UNLEASH_API_TOKEN"]},
)
client.initialize_client()


def arm_for(user_id: str) -> str:
    """The arm of experiment ${plain(flag.experimentKey)} for a user: the variant of flag ${plain(flag.key)}."""
    variant = client.get_variant(${JSON.stringify(flag.key)}, context={"userId": user_id})
    # Off, missing or not fetched yet: the SDK answers the "disabled" variant; serve control.
    return variant["name"] if variant["enabled"] else ${JSON.stringify(control)}


def handle(user_id: str) -> None:
    arm = arm_for(user_id)
${branches}${tail}
`;
}

function goSnippet(flag: FlagTarget): string {
  const control = flag.arms[0]?.name ?? "control";
  const cases = flag.arms
    .slice(1)
    .map((arm) => `\tcase ${JSON.stringify(arm.name)}:\n\t\t// the ${plain(arm.name)} arm`)
    .join("\n");
  return `package main

import (
\t"log"
\t"net/http"
\t"os"

\t"github.com/Unleash/unleash-client-go/v4"
\tunleashcontext "github.com/Unleash/unleash-client-go/v4/context"
)

// UNLEASH_URL: the Unleash API URL (https://unleash.example.com/api);
// UNLEASH_API_TOKEN: a backend (client) token for the flag's environment.
func init() {
\terr := unleash.Initialize(
\t\tunleash.WithAppName("my-service"),
\t\tunleash.WithUrl(os.Getenv("UNLEASH_URL")),
\t\tunleash.WithCustomHeaders(http.Header{"Authorization": {os.Getenv("UNLEASH_API_TOKEN")}}),
\t\tunleash.WithListener(&unleash.NoopListener{}),
\t)
\tif err != nil {
\t\tlog.Fatal(err)
\t}
\tunleash.WaitForReady()
}

// armFor is the arm of experiment ${plain(flag.experimentKey)} for a user: the variant of flag ${plain(flag.key)}.
func armFor(userID string) string {
\tvariant := unleash.GetVariant(${JSON.stringify(flag.key)}, unleash.WithVariantContext(unleashcontext.Context{UserId: userID}))
\t// Off, missing or not fetched yet: the SDK answers the "disabled" variant; serve control.
\tif !variant.Enabled {
\t\treturn ${JSON.stringify(control)}
\t}
\treturn variant.Name
}

func handle(userID string) {
\tswitch armFor(userID) {
${cases}
\tdefault:
\t\t// ${plain(control)}: the control arm (also when the flag is off or missing)
\t}
}
`;
}

/** The Unleash provider module: `flags.provider: unleash`. */
export const unleashProvider: FlagProviderModule = {
  type: TYPE,
  credentials: [
    {
      credential: "api_token",
      what: "an Unleash admin API token or personal access token that may create and update feature flags, their strategies and variants in the project and environment",
    },
  ],
  documentedApiUrls: [],
  /**
   * Settings: `api_url` (required, allowed by the operator: FLAG_API_URLS),
   * `project` (default `default`), `environment` (required), `stickiness`
   * (default `default`); credential `api_token`.
   *
   * @throws FlagProviderError `invalid_config` naming `flags.<field>`; `provider_refused` for an api_url
   *   the operator did not allow
   */
  create(settings, context) {
    return new UnleashProvider(readSettings(settings, context), context.fetch);
  },
  /** Code that evaluates the flag with Unleash's official server SDK and branches by arm name. */
  snippet(language: SnippetLanguage, flag: FlagTarget): string {
    switch (language) {
      case "typescript":
        return tsSnippet(flag);
      case "python":
        return pySnippet(flag);
      case "go":
        return goSnippet(flag);
    }
  },
};
