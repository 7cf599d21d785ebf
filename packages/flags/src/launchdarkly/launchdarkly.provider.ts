/**
 * The LaunchDarkly flag provider: one multivariate flag per experiment, with
 * one string variation per arm (value and name = the arm's name), whose
 * default rule ("fallthrough") in the configured environment is a percentage
 * rollout of the arms' weights in thousandths of a percent (100000 = 100 %).
 *
 * All calls go through LaunchDarkly's official REST client
 * (`launchdarkly-api-typescript`, axios based) with axios's `fetch` adapter
 * bound to `context.fetch` (`adapter: "fetch"`, `env: { fetch }`), so the
 * runtime's outbound guard sees every request; answers are capped at
 * {@link MAX_ANSWER_BYTES} (`maxContentLength`), redirects are not followed,
 * and each request pins `LD-API-Version: 20240415`.
 *
 * Endpoints (https://launchdarkly.com/docs/api):
 * - List flags, `GET /api/v2/flags/{projectKey}?env=<env>&summary=false&limit=100&offset=N&filter=query:<common prefix>,filterEnv:<env>`
 *   (https://launchdarkly.com/docs/api/feature-flags/get-feature-flags): `read` and the read before each write;
 *   one request for any number of keys sharing a prefix, paged by 100 following `_links.next`.
 * - Create a flag, `POST /api/v2/flags/{projectKey}` (https://launchdarkly.com/docs/api/feature-flags/post-feature-flag),
 *   with `defaults` onVariation = offVariation = control, so every environment starts serving control.
 * - Update a flag, `PATCH /api/v2/flags/{projectKey}/{flagKey}` as a semantic patch
 *   (https://launchdarkly.com/docs/api/feature-flags/patch-feature-flag, `Content-Type: application/json;
 *   domain-model=launchdarkly.semanticpatch`, `environmentKey`): `updateOffVariation` (control),
 *   `updateFallthroughVariationOrRollout` (`rolloutWeights` by variation id, `rolloutContextKind: user`),
 *   `turnFlagOn`, `turnFlagOff`, and `addVariation` when an arm has no variation yet. Only the instructions
 *   whose state differs are sent; none when the flag already serves what is asked (no write at all).
 * - When the environment requires approvals LaunchDarkly answers the patch 405 ("Required approvals");
 *   the provider then lists the flag's approval requests,
 *   `GET /api/v2/projects/{projectKey}/flags/{flagKey}/environments/{environmentKey}/approval-requests`
 *   (https://launchdarkly.com/docs/api/approvals/get-approvals-for-flag), answers with a pending one that
 *   carries the same instructions, or creates one, `POST` on the same path
 *   (https://launchdarkly.com/docs/api/approvals/post-approval-request-for-flag), and answers
 *   `waiting_for_approval` with its id and the flag's page in that environment.
 *
 * Permissions (https://launchdarkly.com/docs/home/account/role-actions): an API access token (personal or
 * service, `Authorization: <token>`) whose role allows `viewProject` on `proj/<project>`, and on
 * `proj/<project>:env/<environment>:flag/*` the actions `createFlag`, `updateFlagVariations` (an arm added
 * later), `updateOn`, `updateFallthrough`, `updateOffVariation` and `createApprovalRequest`.
 *
 * The kill (`disable`): `turnFlagOff` with the off variation set to control. When a flag is off LaunchDarkly
 * serves its off variation to every context, whatever individual targets, rules or prerequisites a person
 * added; a 100 %-control rollout would change the default rule only and leave those serving treatments. It is
 * also one instruction, the documented kill switch, and it keeps the rollout in place, so `setWeights` resumes
 * with `turnFlagOn`. `read` reports an off flag as its off variation at 1.
 *
 * Rate limits (README "Rate limiting"): 429 with `X-Ratelimit-Reset` (epoch milliseconds) or, for IP limits,
 * `Retry-After` (seconds); both become `retryAfterMs`. LaunchDarkly does not publish the numbers: the global
 * and route limits reset every ten seconds. A 409 is a concurrent change (`conflict`, retryable: read again).
 *
 * Instances (the API description's "Federal environments" and "EU environments"): `https://app.launchdarkly.com`
 * (default), `https://app.eu.launchdarkly.com` (EU), `https://app.launchdarkly.us` (federal).
 */
import {
  ApprovalsApi,
  Configuration,
  type CreateFlagConfigApprovalRequestRequest,
  type FeatureFlagBody,
  FeatureFlagsApi,
  type PatchWithComment,
} from "launchdarkly-api-typescript";
import { errorForStatus, MAX_ANSWER_BYTES, transportError } from "../http";
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

const TYPE = "launchdarkly";
/** LaunchDarkly's rollout scale: thousandths of a percent. */
const WHOLE = 100_000;
const API_VERSION = "20240415";
const PAGE_LIMIT = 100;
const MAX_PAGES = 1000;
/** Project, environment and flag keys: letters, digits, `.`, `_`, `-` (LaunchDarkly's key rule). */
const KEY = /^[A-Za-z0-9][A-Za-z0-9._-]*$/u;
const SEMANTIC_PATCH = "application/json; domain-model=launchdarkly.semanticpatch";
const TAG = "outcome-runtime";

const DOCUMENTED_API_URLS = [
  "https://app.launchdarkly.com",
  "https://app.eu.launchdarkly.com",
  "https://app.launchdarkly.us",
] as const;

/** A semantic patch instruction (`{ kind, ... }`). */
type Instruction = Readonly<Record<string, unknown>> & { readonly kind: string };

/** A variation as read: its id, its name (else its value as text) and its value. */
interface Variation {
  readonly id: string;
  readonly name: string;
  readonly value: unknown;
}

/** The flag's configuration in the configured environment, as much as the provider uses. */
interface EnvironmentConfig {
  readonly on: boolean;
  /** Thousandths per variation index the default rule serves; null when it is neither a variation nor a rollout summing to 100000. */
  readonly fallthrough: readonly number[] | null;
  /** False when the rollout buckets by something other than the user key. */
  readonly bucketsByUserKey: boolean;
  readonly offVariation: number | null;
  /** Individual targets, rules or prerequisites: something besides the default rule decides some units. */
  readonly otherTargeting: boolean;
  readonly version: number | null;
  readonly lastModified: number | null;
  /** The flag's page in this environment (`_site.href`), relative to the API's origin. */
  readonly site: string | null;
}

interface Flag {
  readonly key: string;
  readonly version: number;
  readonly variations: readonly Variation[];
  readonly environment: EnvironmentConfig | null;
}

/** What a write should leave: on with these thousandths per variation index, or off (serving control). */
type Desired = { readonly on: true; readonly thousandths: readonly number[] } | { readonly on: false };

/**
 * Weights (fractions summing to 1) as thousandths of a percent summing to
 * exactly 100000, by largest remainder (ties to the earlier arm).
 */
export function toThousandths(fractions: readonly number[]): number[] {
  const raw = fractions.map((f) => f * WHOLE);
  const result = raw.map((r) => Math.floor(r + 1e-9));
  let rest = WHOLE - result.reduce((a, b) => a + b, 0);
  const order = raw
    .map((r, i) => ({ i, remainder: r - Math.floor(r + 1e-9) }))
    .sort((a, b) => b.remainder - a.remainder || a.i - b.i);
  for (let k = 0; rest > 0 && order.length > 0; k++, rest--) {
    const at = order[k % order.length]!.i;
    result[at] = result[at]! + 1;
  }
  for (let k = order.length - 1; rest < 0 && k >= 0; k--) {
    const at = order[k]!.i;
    if (result[at]! > 0) {
      result[at] = result[at]! - 1;
      rest++;
    }
  }
  return result;
}

function bad(what: string, problem: string): FlagProviderError {
  return new FlagProviderError(
    "bad_response",
    `${what}: the answer is not in LaunchDarkly's documented shape: ${problem}`,
    { details: { call: what, problem } },
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isIndex(value: unknown, length: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value < length;
}

/** A `Variation` of the answer. */
function parseVariation(raw: unknown, where: string, what: string): Variation {
  if (!isRecord(raw)) throw bad(what, `${where} is not an object`);
  if (typeof raw._id !== "string" || raw._id === "") throw bad(what, `${where}._id is not a string`);
  if (!("value" in raw)) throw bad(what, `${where} has no value`);
  if (raw.name !== undefined && typeof raw.name !== "string") throw bad(what, `${where}.name is not a string`);
  const name =
    typeof raw.name === "string" && raw.name !== ""
      ? raw.name
      : typeof raw.value === "string"
        ? raw.value
        : JSON.stringify(raw.value);
  return { id: raw._id, name, value: raw.value };
}

/** The thousandths per variation index of a `fallthrough` (`VariationOrRolloutRep`), or null. */
function parseFallthrough(
  raw: unknown,
  count: number,
  where: string,
  what: string,
): { thousandths: number[] | null; byUserKey: boolean } {
  if (raw === undefined || raw === null) return { thousandths: null, byUserKey: true };
  if (!isRecord(raw)) throw bad(what, `${where} is not an object`);
  if (raw.variation !== undefined && raw.variation !== null) {
    if (!isIndex(raw.variation, count)) throw bad(what, `${where}.variation ${show(raw.variation)} is no variation`);
    const thousandths = new Array<number>(count).fill(0);
    thousandths[raw.variation] = WHOLE;
    return { thousandths, byUserKey: true };
  }
  if (raw.rollout === undefined || raw.rollout === null) return { thousandths: null, byUserKey: true };
  const rollout = raw.rollout;
  if (!isRecord(rollout) || !Array.isArray(rollout.variations)) {
    throw bad(what, `${where}.rollout.variations is not an array`);
  }
  const thousandths = new Array<number>(count).fill(0);
  for (const [i, weighted] of rollout.variations.entries()) {
    if (!isRecord(weighted) || !isIndex(weighted.variation, count) || typeof weighted.weight !== "number") {
      throw bad(what, `${where}.rollout.variations[${i}] is not { variation, weight } of a variation`);
    }
    thousandths[weighted.variation] = thousandths[weighted.variation]! + weighted.weight;
  }
  const byUserKey =
    (rollout.contextKind === undefined || rollout.contextKind === null || rollout.contextKind === "user") &&
    (rollout.bucketBy === undefined || rollout.bucketBy === null || rollout.bucketBy === "key");
  const total = thousandths.reduce((a, b) => a + b, 0);
  return { thousandths: total === WHOLE ? thousandths : null, byUserKey };
}

/** A `FeatureFlagConfig` (the flag in one environment). */
function parseEnvironment(raw: unknown, count: number, where: string, what: string): EnvironmentConfig {
  if (!isRecord(raw)) throw bad(what, `${where} is not an object`);
  if (typeof raw.on !== "boolean") throw bad(what, `${where}.on is not a boolean`);
  const { thousandths, byUserKey } = parseFallthrough(raw.fallthrough, count, `${where}.fallthrough`, what);
  if (raw.offVariation !== undefined && raw.offVariation !== null && !isIndex(raw.offVariation, count)) {
    throw bad(what, `${where}.offVariation ${show(raw.offVariation)} is no variation`);
  }
  let otherTargeting = false;
  for (const field of ["targets", "contextTargets", "rules", "prerequisites"]) {
    const list = raw[field];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) throw bad(what, `${where}.${field} is not an array`);
    if (list.length > 0) otherTargeting = true;
  }
  const site = isRecord(raw._site) && typeof raw._site.href === "string" ? raw._site.href : null;
  return {
    on: raw.on,
    fallthrough: thousandths,
    bucketsByUserKey: byUserKey,
    offVariation: isIndex(raw.offVariation, count) ? raw.offVariation : null,
    otherTargeting,
    version: typeof raw.version === "number" ? raw.version : null,
    lastModified: typeof raw.lastModified === "number" ? raw.lastModified : null,
    site,
  };
}

/** A `FeatureFlag`, with its configuration in `environment` when the answer has it. */
function parseFlag(raw: unknown, environment: string, where: string, what: string): Flag {
  if (!isRecord(raw)) throw bad(what, `${where} is not an object`);
  if (typeof raw.key !== "string" || raw.key === "") throw bad(what, `${where}.key is not a string`);
  if (typeof raw._version !== "number") throw bad(what, `${where}._version is not a number`);
  if (!Array.isArray(raw.variations)) throw bad(what, `${where}.variations is not an array`);
  const variations = raw.variations.map((v, i) => parseVariation(v, `${where}.variations[${i}]`, what));
  let config: EnvironmentConfig | null = null;
  if (raw.environments !== undefined && raw.environments !== null) {
    if (!isRecord(raw.environments)) throw bad(what, `${where}.environments is not an object`);
    const env = raw.environments[environment];
    if (env !== undefined) {
      config = parseEnvironment(env, variations.length, `${where}.environments.${environment}`, what);
    }
  }
  return { key: raw.key, version: raw._version, variations, environment: config };
}

/** An approval request as the provider uses it. */
interface Approval {
  readonly id: string;
  readonly status: string;
  readonly reviewStatus: string;
  readonly instructions: readonly unknown[];
}

function parseApproval(raw: unknown, where: string, what: string): Approval {
  if (!isRecord(raw)) throw bad(what, `${where} is not an object`);
  if (typeof raw._id !== "string" || raw._id === "") throw bad(what, `${where}._id is not a string`);
  if (typeof raw.status !== "string") throw bad(what, `${where}.status is not a string`);
  if (!Array.isArray(raw.instructions)) throw bad(what, `${where}.instructions is not an array`);
  return {
    id: raw._id,
    status: raw.status,
    reviewStatus: typeof raw.reviewStatus === "string" ? raw.reviewStatus : "pending",
    instructions: raw.instructions,
  };
}

/** JSON with the keys of every object sorted, to compare instructions. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (isRecord(value)) {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

function commonPrefix(keys: readonly string[]): string {
  if (keys.length === 0) return "";
  let prefix = keys[0]!;
  for (const key of keys) {
    while (!key.startsWith(prefix)) prefix = prefix.slice(0, -1);
  }
  return prefix;
}

/**
 * Checks the target: a LaunchDarkly flag key, and one or more distinct non-empty arm names.
 *
 * @throws FlagProviderError `invalid_config` naming the flag and what is wrong
 */
function checkTarget(target: FlagTarget, call: string): void {
  if (typeof target.key !== "string" || !KEY.test(target.key)) {
    throw new FlagProviderError(
      "invalid_config",
      `${TYPE} ${call}: the flag key ${show(target.key)} is not a LaunchDarkly key (letters, digits, '.', '_', '-'); name the flag with such a key`,
      { details: { flag: target.key } },
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
      `${TYPE} ${call}(${target.key}): the arms ${show(names)} must be one or more distinct non-empty names`,
      { details: { flag: target.key, arms: names } },
    );
  }
}

/**
 * The fractions in arm order (a missing arm 0), checked: every key an arm, each 0..1, summing to 1 (±1e-6).
 *
 * @throws FlagProviderError `invalid_config` naming the flag, the weights and the arms
 */
function checkWeights(target: FlagTarget, weights: Readonly<Record<string, number>>, call: string): number[] {
  const names = target.arms.map((a) => a.name);
  const unknown = Object.keys(weights).filter((k) => !names.includes(k));
  const fractions = names.map((n) => weights[n] ?? 0);
  const sum = fractions.reduce((a, b) => a + b, 0);
  if (unknown.length > 0 || fractions.some((f) => !Number.isFinite(f) || f < 0 || f > 1) || Math.abs(sum - 1) > 1e-6) {
    throw new FlagProviderError(
      "invalid_config",
      `${TYPE} ${call}(${target.key}): the weights ${show(weights)} are not fractions of the arms ${show(names)} summing to 1`,
      { details: { flag: target.key, weights, arms: names } },
    );
  }
  return fractions;
}

/** The axios error of the official client, as far as the provider reads it. */
interface ClientError {
  readonly isAxiosError?: boolean;
  readonly message?: string;
  readonly code?: string;
  readonly cause?: unknown;
  readonly response?: { readonly status: number; readonly headers?: unknown; readonly data?: unknown };
}

function headersOf(raw: unknown): Headers {
  const headers = new Headers();
  const plain =
    isRecord(raw) && typeof (raw as { toJSON?: unknown }).toJSON === "function"
      ? ((raw as { toJSON: () => unknown }).toJSON() as Record<string, unknown>)
      : raw;
  if (isRecord(plain)) {
    for (const [name, value] of Object.entries(plain)) {
      if (typeof value === "string") headers.set(name, value);
      else if (Array.isArray(value)) headers.set(name, value.join(", "));
      else if (typeof value === "number") headers.set(name, String(value));
    }
  }
  return headers;
}

class LaunchDarklyProvider implements FlagProvider {
  readonly type = TYPE;
  readonly describe: string;
  private readonly flags: FeatureFlagsApi;
  private readonly approvals: ApprovalsApi;

  constructor(
    private readonly project: string,
    private readonly environment: string,
    private readonly apiUrl: string,
    private readonly token: string,
    fetchFn: typeof fetch,
  ) {
    this.describe = `${TYPE} ${project}/${environment}`;
    const configuration = new Configuration({
      apiKey: token,
      basePath: apiUrl,
      baseOptions: {
        adapter: "fetch",
        env: { fetch: fetchFn },
        maxContentLength: MAX_ANSWER_BYTES,
        maxBodyLength: MAX_ANSWER_BYTES,
        maxRedirects: 0,
        headers: { "LD-API-Version": API_VERSION },
      },
    });
    this.flags = new FeatureFlagsApi(configuration);
    this.approvals = new ApprovalsApi(configuration);
  }

  private flagPath(key: string): string {
    return `/api/v2/flags/${this.project}/${key}`;
  }

  private approvalsPath(key: string): string {
    return `/api/v2/projects/${this.project}/flags/${key}/environments/${this.environment}/approval-requests`;
  }

  /** Runs one call of the official client; every failure becomes a FlagProviderError without the token. */
  private async call(
    what: string,
    signal: AbortSignal,
    run: (options: { signal: AbortSignal }) => Promise<{ readonly data: unknown }>,
  ): Promise<unknown> {
    try {
      return (await run({ signal })).data;
    } catch (error) {
      throw this.redacted(this.failure(error, what, signal));
    }
  }

  private failure(error: unknown, what: string, signal: AbortSignal): FlagProviderError {
    if (error instanceof FlagProviderError) return error;
    const failed = (isRecord(error) || error instanceof Error ? error : {}) as ClientError;
    if (failed.isAxiosError !== true) return transportError(error, what, signal);
    if (failed.response !== undefined) {
      const data = failed.response.data;
      const body = typeof data === "string" ? data : (JSON.stringify(data) ?? "");
      return errorForStatus(failed.response.status, headersOf(failed.response.headers), body, what);
    }
    // The axios error carries the request config (and so the token): only its cause goes on.
    if (signal.aborted) return transportError(signal.reason ?? new Error("aborted"), what, signal);
    if (/maxContentLength/u.test(failed.message ?? "")) {
      return new FlagProviderError("bad_response", `${what}: the answer is larger than ${MAX_ANSWER_BYTES} bytes`, {
        details: { call: what, maxBytes: MAX_ANSWER_BYTES },
      });
    }
    return transportError(failed.cause ?? new Error(failed.message ?? "request failed"), what, signal);
  }

  private redacted(error: FlagProviderError): FlagProviderError {
    if (!error.message.includes(this.token)) return error;
    return new FlagProviderError(error.code, error.message.replaceAll(this.token, "[access token]"), {
      retryable: error.retryable,
      retryAfterMs: error.retryAfterMs,
      details: error.details as Record<string, unknown>,
    });
  }

  /** The flags among `keys` (valid keys only) with their configuration in the environment, paging as needed. */
  private async list(keys: readonly string[], signal: AbortSignal): Promise<Map<string, Flag>> {
    const wanted = new Set(keys.filter((k) => KEY.test(k)));
    const found = new Map<string, Flag>();
    if (wanted.size === 0) return found;
    const prefix = commonPrefix([...wanted]);
    const filter = [...(prefix === "" ? [] : [`query:${prefix}`]), `filterEnv:${this.environment}`].join(",");
    let offset = 0;
    for (let page = 0; ; page++) {
      if (page >= MAX_PAGES) {
        throw bad(`${TYPE} GET /api/v2/flags/${this.project}`, `more than ${MAX_PAGES} pages of ${PAGE_LIMIT} flags`);
      }
      const what = `${TYPE} GET /api/v2/flags/${this.project} (offset ${offset})`;
      const data = await this.call(what, signal, (options) =>
        this.flags.getFeatureFlags(
          this.project,
          this.environment,
          undefined,
          PAGE_LIMIT,
          offset,
          undefined,
          false,
          filter,
          undefined,
          undefined,
          undefined,
          options,
        ),
      );
      if (!isRecord(data) || !Array.isArray(data.items)) throw bad(what, "no `items` array");
      for (const [i, item] of data.items.entries()) {
        const flag = parseFlag(item, this.environment, `items[${i}]`, what);
        if (!wanted.has(flag.key)) continue;
        if (flag.environment === null) {
          throw new FlagProviderError(
            "not_found",
            `${what}: the flag ${flag.key} has no configuration in the environment ${show(this.environment)}; check flags.environment (an environment key of the project ${show(this.project)})`,
            { details: { call: what, field: "flags.environment", value: this.environment } },
          );
        }
        found.set(flag.key, flag);
      }
      const links = isRecord(data._links) ? data._links : {};
      if (found.size === wanted.size || data.items.length === 0 || !isRecord(links.next)) break;
      offset += data.items.length;
    }
    return found;
  }

  private async one(key: string, signal: AbortSignal): Promise<Flag | null> {
    return (await this.list([key], signal)).get(key) ?? null;
  }

  /**
   * What each flag serves in the environment: weights as fractions by variation name (an off flag: its off
   * variation at 1; null when individual targets, rules or prerequisites also decide). One list request for
   * keys sharing a prefix, more only past 100 matching flags.
   *
   * @throws FlagProviderError the status's code, `timeout`, `unavailable`, `provider_refused`, `bad_response`
   */
  async read(keys: readonly string[], signal: AbortSignal): Promise<ReadonlyMap<string, ServedFlag>> {
    const found = await this.list([...new Set(keys)], signal);
    const result = new Map<string, ServedFlag>();
    for (const key of keys) {
      const flag = found.get(key);
      result.set(
        key,
        flag === undefined
          ? { exists: false, enabled: false, variations: [], weights: null, version: null }
          : served(flag),
      );
    }
    return result;
  }

  /**
   * Creates the flag when missing (one variation per arm, value and name the arm), adds variations for new
   * arms, and makes the environment serve the arms' weights (thousandths of a percent), on, control when off.
   * Writes nothing when it already does (`answer.unchanged`); `waiting_for_approval` when the environment
   * requires approvals.
   *
   * @throws FlagProviderError `invalid_config` for a bad target; the status's code (409 `conflict`), `timeout`,
   *   `unavailable`, `provider_refused`, `bad_response`
   */
  async ensureFlag(target: FlagTarget, signal: AbortSignal): Promise<FlagChange> {
    checkTarget(target, "ensureFlag");
    const fractions = checkWeights(
      target,
      Object.fromEntries(target.arms.map((a) => [a.name, a.weight])),
      "ensureFlag",
    );
    let flag = await this.one(target.key, signal);
    let created = false;
    if (flag === null) {
      flag = await this.create(target, signal);
      created = true;
    }
    return this.converge(target, flag, fractions, created, signal);
  }

  /**
   * Serves `weights` (fractions by arm name summing to 1) on the existing flag, turning it on if it was killed.
   *
   * @throws FlagProviderError `not_found` when the flag does not exist; as {@link LaunchDarklyProvider.ensureFlag}
   */
  async setWeights(
    target: FlagTarget,
    weights: Readonly<Record<string, number>>,
    signal: AbortSignal,
  ): Promise<FlagChange> {
    checkTarget(target, "setWeights");
    const fractions = checkWeights(target, weights, "setWeights");
    const flag = await this.existing(target, "setWeights", signal);
    return this.converge(target, flag, fractions, false, signal);
  }

  /**
   * The kill: off variation = control, then `turnFlagOff`; every context gets control whatever else targets it.
   *
   * @throws FlagProviderError `not_found` when the flag does not exist; as {@link LaunchDarklyProvider.ensureFlag}
   */
  async disable(target: FlagTarget, signal: AbortSignal): Promise<FlagChange> {
    checkTarget(target, "disable");
    const flag = await this.existing(target, "disable", signal);
    return this.converge(target, flag, null, false, signal);
  }

  private async existing(target: FlagTarget, call: string, signal: AbortSignal): Promise<Flag> {
    const flag = await this.one(target.key, signal);
    if (flag !== null) return flag;
    throw new FlagProviderError(
      "not_found",
      `${TYPE} ${call}(${target.key}): the flag does not exist in the project ${show(this.project)}; create it with ensureFlag (the SDK serves the code's fallback value meanwhile)`,
      { details: { flag: target.key, project: this.project } },
    );
  }

  /** POST the flag: one variation per arm, control served on and off in every environment until patched. */
  private async create(target: FlagTarget, signal: AbortSignal): Promise<Flag> {
    const what = `${TYPE} POST /api/v2/flags/${this.project} (${target.key})`;
    const body: FeatureFlagBody = {
      key: target.key,
      name: target.key,
      description: target.description,
      variations: target.arms.map((arm) => ({ value: arm.name, name: arm.name })),
      temporary: true,
      tags: [TAG],
      defaults: { onVariation: 0, offVariation: 0 },
    };
    let data: unknown;
    try {
      data = await this.call(what, signal, (options) =>
        this.flags.postFeatureFlag(this.project, body, undefined, options),
      );
    } catch (error) {
      if (!(error instanceof FlagProviderError) || error.code !== "conflict") throw error;
      // Created meanwhile (read again), or archived: archived flags are not listed, yet keep their key.
      throw new FlagProviderError(
        "conflict",
        `${error.message}; if no one created it meanwhile, a flag with this key is archived: restore it in LaunchDarkly or name the experiment's flag otherwise`,
        { details: error.details as Record<string, unknown> },
      );
    }
    const flag = parseFlag(data, this.environment, "the created flag", what);
    if (flag.key !== target.key) throw bad(what, `the created flag's key is ${show(flag.key)}`);
    // Created flags are off everywhere, serving `defaults` (control) on and off.
    const assumed: EnvironmentConfig = {
      on: false,
      fallthrough: flag.variations.map((_, i) => (i === 0 ? WHOLE : 0)),
      bucketsByUserKey: true,
      offVariation: 0,
      otherTargeting: false,
      version: null,
      lastModified: null,
      site: null,
    };
    return flag.environment === null ? { ...flag, environment: assumed } : flag;
  }

  /**
   * Read → compare → write: adds the variations arms lack, then sends the
   * instructions whose state differs (`fractions` null: off, serving control).
   */
  private async converge(
    target: FlagTarget,
    start: Flag,
    fractions: readonly number[] | null,
    created: boolean,
    signal: AbortSignal,
  ): Promise<FlagChange> {
    let flag = start;
    const missing = target.arms.filter((arm) => armIndex(flag, arm.name) < 0);
    if (missing.length > 0) {
      const added = await this.patch(
        flag,
        missing.map((arm) => ({ kind: "addVariation", value: arm.name, name: arm.name })),
        `add the variations ${missing.map((a) => a.name).join(", ")}`,
        created,
        signal,
      );
      if (added.status === "waiting_for_approval") return added;
      flag = await this.existing(target, "ensureFlag", signal);
    }
    const indexes = target.arms.map((arm) => armIndex(flag, arm.name));
    let desired: Desired;
    if (fractions === null) {
      desired = { on: false };
    } else {
      const thousandths = new Array<number>(flag.variations.length).fill(0);
      toThousandths(fractions).forEach((t, i) => {
        thousandths[indexes[i]!] = t;
      });
      desired = { on: true, thousandths };
    }
    const instructions = plan(flag, desired, indexes[0]!);
    if (instructions.length === 0) {
      return {
        status: "applied",
        at: new Date(),
        answer: { flagKey: flag.key, unchanged: true, created, version: flag.environment?.version ?? flag.version },
      };
    }
    const purpose =
      fractions === null
        ? "serve control to every unit (kill)"
        : `serve ${target.arms.map((a, i) => `${a.name} ${(fractions[i]! * 100).toFixed(2)}%`).join(", ")}`;
    return this.patch(flag, instructions, purpose, created, signal);
  }

  /** The semantic patch; a 405 (approvals required) becomes an approval request carrying the same instructions. */
  private async patch(
    flag: Flag,
    instructions: readonly Instruction[],
    purpose: string,
    created: boolean,
    signal: AbortSignal,
  ): Promise<FlagChange> {
    const what = `${TYPE} PATCH ${this.flagPath(flag.key)} (${this.environment})`;
    const comment = `Outcome Runtime: ${purpose}`;
    const semanticPatch = { environmentKey: this.environment, instructions, comment };
    let data: unknown;
    try {
      data = await this.call(what, signal, (options) =>
        this.flags.patchFeatureFlag(
          this.project,
          flag.key,
          // The generated type describes a JSON patch; the semantic patch is the documented alternative body.
          semanticPatch as unknown as PatchWithComment,
          undefined,
          { ...options, headers: { "Content-Type": SEMANTIC_PATCH } },
        ),
      );
    } catch (error) {
      if (error instanceof FlagProviderError && error.details.status === 405) {
        return this.requestApproval(flag, instructions, comment, created, signal);
      }
      throw error;
    }
    const updated = parseFlag(data, this.environment, "the updated flag", what);
    const at = updated.environment?.lastModified;
    return {
      status: "applied",
      at: typeof at === "number" && Number.isFinite(at) ? new Date(at) : new Date(),
      answer: {
        flagKey: flag.key,
        created,
        instructions: instructions.map((i) => i.kind),
        version: updated.environment?.version ?? updated.version,
      },
    };
  }

  private async requestApproval(
    flag: Flag,
    instructions: readonly Instruction[],
    description: string,
    created: boolean,
    signal: AbortSignal,
  ): Promise<FlagChange> {
    const path = this.approvalsPath(flag.key);
    const listWhat = `${TYPE} GET ${path}`;
    const listed = await this.call(listWhat, signal, (options) =>
      this.approvals.getApprovalsForFlag(this.project, flag.key, this.environment, options),
    );
    if (!isRecord(listed) || !Array.isArray(listed.items)) throw bad(listWhat, "no `items` array");
    const wanted = canonical(instructions);
    const pending = listed.items
      .map((item, i) => parseApproval(item, `items[${i}]`, listWhat))
      .find((a) => a.status === "pending" && a.reviewStatus !== "declined" && canonical(a.instructions) === wanted);
    let approval = pending;
    if (approval === undefined) {
      const postWhat = `${TYPE} POST ${path}`;
      const body: CreateFlagConfigApprovalRequestRequest = {
        description,
        instructions: instructions.map((i) => ({ ...i })),
      };
      const createdApproval = await this.call(postWhat, signal, (options) =>
        this.approvals.postApprovalRequestForFlag(this.project, flag.key, this.environment, body, options),
      );
      approval = parseApproval(createdApproval, "the approval request", postWhat);
    }
    const site = flag.environment?.site ?? null;
    return {
      status: "waiting_for_approval",
      approval: { id: approval.id, url: site === null ? null : new URL(site, this.apiUrl).toString() },
      answer: {
        flagKey: flag.key,
        created,
        approvalId: approval.id,
        reused: pending !== undefined,
        instructions: instructions.map((i) => i.kind),
      },
    };
  }
}

/** The variation index of an arm: the variation named so, else the one whose value is the name. */
function armIndex(flag: Flag, arm: string): number {
  const byName = flag.variations.findIndex((v) => v.name === arm);
  return byName >= 0 ? byName : flag.variations.findIndex((v) => v.value === arm);
}

/** The instructions that take the flag's environment from what it is to `desired`; empty when it is there. */
function plan(flag: Flag, desired: Desired, control: number): Instruction[] {
  const env = flag.environment;
  if (env === null) return [];
  const instructions: Instruction[] = [];
  const controlId = flag.variations[control]!.id;
  if (env.offVariation !== control) instructions.push({ kind: "updateOffVariation", variationId: controlId });
  if (!desired.on) {
    if (env.on) instructions.push({ kind: "turnFlagOff" });
    return instructions;
  }
  const same =
    env.fallthrough !== null &&
    env.bucketsByUserKey &&
    env.fallthrough.length === desired.thousandths.length &&
    env.fallthrough.every((t, i) => t === desired.thousandths[i]);
  if (!same) {
    instructions.push({
      kind: "updateFallthroughVariationOrRollout",
      rolloutContextKind: "user",
      rolloutWeights: Object.fromEntries(flag.variations.map((v, i) => [v.id, desired.thousandths[i] ?? 0])),
    });
  }
  if (!env.on) instructions.push({ kind: "turnFlagOn" });
  return instructions;
}

/** What the flag serves in the environment, as fractions by variation name. */
function served(flag: Flag): ServedFlag {
  const env = flag.environment!;
  const names = flag.variations.map((v) => v.name);
  const zero = (): Record<string, number> => Object.fromEntries(names.map((n) => [n, 0]));
  let weights: Record<string, number> | null = null;
  if (!env.on) {
    if (env.offVariation !== null) {
      weights = zero();
      weights[names[env.offVariation]!] = 1;
    }
  } else if (!env.otherTargeting && env.fallthrough !== null) {
    const shares = zero();
    env.fallthrough.forEach((t, i) => {
      shares[names[i]!] = shares[names[i]!]! + t / WHOLE;
    });
    weights = shares;
  }
  return {
    exists: true,
    enabled: env.on,
    variations: names,
    weights,
    version: String(env.version ?? flag.version),
  };
}

function literal(text: string): string {
  return JSON.stringify(text);
}

function snippet(language: SnippetLanguage, flag: FlagTarget): string {
  const key = literal(flag.key);
  const control = literal(flag.arms[0]?.name ?? "control");
  const treatments = flag.arms.slice(1).map((a) => literal(a.name));
  switch (language) {
    case "typescript":
      return [
        `import { init } from "@launchdarkly/node-server-sdk";`,
        ``,
        `// One client per process, with the environment's SDK key (not the REST API token).`,
        `const ldClient = init(process.env.LAUNCHDARKLY_SDK_KEY ?? "");`,
        `await ldClient.waitForInitialization({ timeout: 10 });`,
        ``,
        `/** The arm of ${flag.experimentKey} for a user: the variation's value is the arm's name. */`,
        `export async function armFor(userId: string): Promise<string> {`,
        `  return ldClient.variation(${key}, { kind: "user", key: userId }, ${control});`,
        `}`,
        ``,
        `export async function handle(userId: string): Promise<void> {`,
        `  switch (await armFor(userId)) {`,
        ...treatments.flatMap((t) => [`    case ${t}:`, `      // ${JSON.parse(t)}`, `      break;`]),
        `    default:`,
        `      // ${flag.arms[0]?.name ?? "control"} (also served when LaunchDarkly cannot be reached)`,
        `  }`,
        `}`,
      ].join("\n");
    case "python":
      return [
        `import os`,
        ``,
        `import ldclient`,
        `from ldclient import Context`,
        `from ldclient.config import Config`,
        ``,
        `# One client per process, with the environment's SDK key (not the REST API token).`,
        `ldclient.set_config(Config(os.environ["LAUNCHDARKLY_SDK_KEY"]))`,
        `ld_client = ldclient.get()`,
        ``,
        ``,
        `def arm_for(user_id: str) -> str:`,
        `    """The arm of ${flag.experimentKey} for a user: the variation's value is the arm's name."""`,
        `    context = Context.builder(user_id).kind("user").build()`,
        `    return ld_client.variation(${key}, context, ${control})`,
        ``,
        ``,
        `def handle(user_id: str) -> None:`,
        `    arm = arm_for(user_id)`,
        ...treatments.flatMap((t, i) => [
          `    ${i === 0 ? "if" : "elif"} arm == ${t}:`,
          `        ...  # ${JSON.parse(t)}`,
        ]),
        ...(treatments.length === 0
          ? [`    ...  # ${flag.arms[0]?.name ?? "control"}`]
          : [
              `    else:`,
              `        ...  # ${flag.arms[0]?.name ?? "control"} (also served when LaunchDarkly cannot be reached)`,
            ]),
      ].join("\n");
    case "go":
      return [
        `import (`,
        `\t"os"`,
        `\t"time"`,
        ``,
        `\t"github.com/launchdarkly/go-sdk-common/v3/ldcontext"`,
        `\tld "github.com/launchdarkly/go-server-sdk/v7"`,
        `)`,
        ``,
        `// One client per process, with the environment's SDK key (not the REST API token).`,
        `var ldClient, _ = ld.MakeClient(os.Getenv("LAUNCHDARKLY_SDK_KEY"), 10*time.Second)`,
        ``,
        `// armFor is the arm of ${flag.experimentKey} for a user: the variation's value is the arm's name.`,
        `func armFor(userID string) string {`,
        `\tarm, _ := ldClient.StringVariation(${key}, ldcontext.New(userID), ${control})`,
        `\treturn arm`,
        `}`,
        ``,
        `func handle(userID string) {`,
        `\tswitch armFor(userID) {`,
        ...treatments.flatMap((t) => [`\tcase ${t}:`, `\t\t// ${JSON.parse(t)}`]),
        `\tdefault:`,
        `\t\t// ${flag.arms[0]?.name ?? "control"} (also served when LaunchDarkly cannot be reached)`,
        `\t}`,
        `}`,
      ].join("\n");
  }
}

/** `flags.provider: launchdarkly`. */
export const launchdarklyProvider: FlagProviderModule = {
  type: TYPE,
  credentials: [
    {
      credential: "access_token",
      what: "a LaunchDarkly API access token whose role allows viewProject, createFlag, updateFlagVariations, updateOn, updateFallthrough, updateOffVariation and createApprovalRequest in the project's environment",
    },
  ],
  documentedApiUrls: DOCUMENTED_API_URLS,
  /**
   * Binds the provider to `flags.project` and `flags.environment` (LaunchDarkly
   * keys) at `flags.api_url` (default `https://app.launchdarkly.com`).
   *
   * @throws FlagProviderError `invalid_config` naming `flags.<field>` for a missing or malformed setting or a
   *   missing `access_token`; `provider_refused` for an `api_url` neither documented nor allowed
   */
  create(settings: Readonly<Record<string, unknown>>, context: FlagProviderContext): FlagProvider {
    const project = stringSetting(
      TYPE,
      settings,
      "project",
      KEY,
      "a LaunchDarkly project key (letters, digits, '.', '_', '-'), e.g. default",
    );
    const environment = stringSetting(
      TYPE,
      settings,
      "environment",
      KEY,
      "an environment key of that project (letters, digits, '.', '_', '-'), e.g. production",
    );
    const apiUrl = apiUrlSetting(TYPE, settings, DOCUMENTED_API_URLS, context.allowedApiUrls);
    const token = context.credentials.access_token;
    if (typeof token !== "string" || token.trim() === "") {
      throw invalidSetting(
        TYPE,
        "access_token_env",
        "no LaunchDarkly access token was given",
        "set flags.access_token_env (or flags.access_token_secret) to a variable (or secret) holding an API access token (Account settings > Authorization) whose role may create and update flags in the project",
      );
    }
    return new LaunchDarklyProvider(project, environment, apiUrl, token.trim(), context.fetch);
  },
  snippet,
};
