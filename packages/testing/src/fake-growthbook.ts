/**
 * A local stand-in for GrowthBook's REST API (features) and its SDK endpoint,
 * for the `growthbook` flag provider's tests. It follows the published API
 * description, GrowthBook REST API 5.0.1 (https://docs.growthbook.io/api;
 * repository growthbook/growthbook, `packages/back-end/generated/spec.yaml`,
 * also `docs/openapi.yaml`):
 *
 * - base URL `<host>/api`; a Secret Key or Personal Access Token as
 *   `Authorization: Bearer secret_...` or as the HTTP Basic user with an empty
 *   password; errors are `{ "message": ... }` with 400 (bad request), 401 (no
 *   valid key), 403 (the key lacks access), 404 (unknown route), 429 ("You
 *   exceeded the rate limit of 60 requests per minute", sent by
 *   express-rate-limit with `Retry-After` and the draft-6 `RateLimit-*`
 *   headers: `packages/back-end/src/api/api.router.ts`);
 * - `GET /api/v1/features` (`listFeatures`: `limit` 1..100, default 10,
 *   `offset`, `projectId`; answer `{ features: FeatureV1[], limit, offset,
 *   count, total, hasMore, nextOffset }`, archived features included);
 * - `POST /api/v1/features` (`postFeature`: `id`, `valueType`, `defaultValue`
 *   required, `owner` required with an organization Secret Key, `project`,
 *   `tags`, `environments: { <env>: { enabled, rules } }`; answer `{ feature }`);
 * - `GET /api/v1/features/{id}` (`getFeature`), `POST /api/v1/features/{id}`
 *   (`updateFeature`: the rules of each environment named are replaced, the
 *   others kept; a new revision is published when something changed),
 *   `POST /api/v1/features/{id}/toggle` (`toggleFeature`: `{ environments:
 *   { <env>: true|false }, reason }`), `DELETE /api/v1/features/{id}`
 *   (`deleteFeature`: `{ deletedId }`);
 * - rules in the `FeatureV1` answer as `normalizeRuleForApi` writes them
 *   (`packages/back-end/src/services/features.ts`): an inline experiment rule
 *   is `{ type: "experiment", id, description, condition, enabled,
 *   trackingKey, hashAttribute, coverage, value: [{ value, weight, name }],
 *   savedGroupTargeting, prerequisites }` (the request takes `values`, or the
 *   deprecated `value`).
 *
 * As the back-end does (not the spec, which says 404): an unknown feature id
 * is a plain error, so `GET`/`POST /api/v1/features/{id}` and the toggle
 * answer 400 `Could not find a feature with that key` / `Feature id '<id>' not
 * found.` (`packages/back-end/src/api/features/getFeature.ts`,
 * `updateFeature.ts`, `toggleFeature.ts`; `util/handler.ts` answers
 * `e.status || 400`), and creating an existing id answers 400 `Feature id
 * '<id>' already exists.` (`postFeature.ts`).
 *
 * The SDK endpoint `GET /api/features/{clientKey}` answers `{ status: 200,
 * features, experiments: [], dateUpdated }` for the SDK connection's
 * environment and projects, each feature's definition built as the back-end's
 * `getFeatureDefinition` (`packages/back-end/src/util/features.ts`) builds it:
 * an archived feature or one off in the environment is left out; disabled
 * rules are left out; an experiment rule becomes `{ key: trackingKey,
 * variations, weights (clamped to 0..1, rounded to 4 decimals), coverage,
 * meta: [{ key: "<index>", name }], hashAttribute }` with no `seed` nor
 * `hashVersion`, so the SDK hashes with version 1 and the tracking key as the
 * seed; a force rule is `{ force }`; a condition other than `""`/`"{}"` is
 * parsed into `condition`.
 *
 * Every request is recorded; tests count requests and writes, make a route
 * fail (status, headers, delay, raw body), edit or delete a feature by hand.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** The routes a test can make fail. */
export type FakeGrowthBookRoute =
  | "listFeatures"
  | "getFeature"
  | "postFeature"
  | "updateFeature"
  | "toggleFeature"
  | "deleteFeature"
  | "sdkPayload";

/** A failure a route answers instead of its own answer. */
export interface FakeGrowthBookFailure {
  /** The status (default 200: the raw `body` then stands for a broken answer). */
  readonly status?: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** Wait this long before answering (a slow server). */
  readonly delayMs?: number;
  /** A string is sent as is (not JSON-encoded); anything else as JSON. Default `{ message }` for the status. */
  readonly body?: unknown;
  /** How many requests fail; default every one until {@link FakeGrowthBook.clearFailures}. */
  readonly times?: number;
}

/** One request as the fake received it. */
export interface FakeGrowthBookRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly route: FakeGrowthBookRoute | null;
  readonly authorization: string | undefined;
  /** The parsed JSON body, or the raw text when it is not JSON, or null. */
  readonly body: unknown;
}

/** A variation of an inline experiment rule, as the API answers it. */
export interface FakeGrowthBookValue {
  value: string;
  weight: number;
  name?: string;
}

/** A rule of one environment, as the `FeatureV1` answer carries it (fields by type). */
export interface FakeGrowthBookRule {
  id: string;
  type: "force" | "rollout" | "experiment" | "experiment-ref";
  description: string;
  condition: string;
  enabled: boolean;
  savedGroupTargeting: { matchType: string; savedGroups: string[] }[];
  prerequisites: { id: string; condition: string }[];
  scheduleRules?: unknown[];
  value?: string | FakeGrowthBookValue[];
  coverage?: number;
  hashAttribute?: string;
  trackingKey?: string;
  seed?: string;
  namespace?: { enabled: boolean; name: string; range: [number, number] };
  experimentId?: string;
  variations?: { value: string; variationId: string }[];
}

/** A feature as the fake keeps it: the `FeatureV1` shape without the computed `definition`s. */
export interface FakeGrowthBookFeature {
  id: string;
  dateCreated: string;
  dateUpdated: string;
  archived: boolean;
  description: string;
  owner: string;
  project: string;
  valueType: "boolean" | "string" | "number" | "json";
  defaultValue: string;
  tags: string[];
  environments: Record<string, { enabled: boolean; rules: FakeGrowthBookRule[] }>;
  prerequisites: string[];
  revision: { version: number; comment: string; date: string; createdBy: string; publishedBy: string };
}

/** An SDK Connection: its client key serves one environment and some projects (all when empty). */
export interface FakeGrowthBookSdkConnection {
  readonly clientKey: string;
  readonly environment: string;
  readonly projects?: readonly string[];
}

export interface FakeGrowthBookOptions {
  /** Secret keys with write access (`secret_admin_...`); a `secret_user_` key counts as a Personal Access Token. */
  readonly apiKeys: readonly string[];
  /** Secret keys with the `readonly` role: writes answer 403. */
  readonly readOnlyKeys?: readonly string[];
  /** The organization's environments (default `production`, `dev`). */
  readonly environments?: readonly string[];
  /** The organization's project ids. */
  readonly projects?: readonly string[];
  readonly sdkConnections?: readonly FakeGrowthBookSdkConnection[];
  /** Requests per minute per key before 429 (GrowthBook Cloud: 60); default no limit. */
  readonly rateLimitPerMinute?: number;
}

export interface FakeGrowthBook {
  /** `http://127.0.0.1:<port>`: the host the REST API (`/api/v1`) and the SDK endpoint (`/api/features`) live on. */
  readonly url: string;
  /** Every request to the REST API and the SDK endpoint, in order. */
  readonly requests: FakeGrowthBookRequest[];
  /** REST requests (not the SDK endpoint) received. */
  readonly restRequests: number;
  /** Writes received (POST and DELETE on `/api/v1/features...`), answered 2xx or not. */
  readonly writes: number;
  /** Forget the recorded requests and the counters. */
  resetCounters(): void;
  /** Make `route` answer `failure` (replaces an earlier one for that route). */
  fail(route: FakeGrowthBookRoute, failure: FakeGrowthBookFailure): void;
  clearFailures(): void;
  /** A copy of the stored feature, or undefined. */
  feature(id: string): FakeGrowthBookFeature | undefined;
  /** Change a feature by hand (the UI); bumps its revision and `dateUpdated`. */
  editFeature(id: string, edit: (feature: FakeGrowthBookFeature) => void): void;
  /** Delete a feature by hand. */
  deleteFeature(id: string): void;
  /** The SDK payload a client key gets now. */
  sdkPayload(clientKey: string): Record<string, unknown>;
  close(): Promise<void>;
}

const FEATURE_ID = /^[a-zA-Z0-9_.:|-]+$/u;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Starts the fake on a free loopback port.
 *
 * @param options the keys it accepts, the organization's environments and projects, its SDK connections
 */
export async function startFakeGrowthBook(options: FakeGrowthBookOptions): Promise<FakeGrowthBook> {
  const environments = options.environments ?? ["production", "dev"];
  const projects = options.projects ?? [];
  const features = new Map<string, FakeGrowthBookFeature>();
  const failures = new Map<FakeGrowthBookRoute, { failure: FakeGrowthBookFailure; left: number }>();
  const windows = new Map<string, { start: number; count: number }>();
  let ruleSeq = 0;
  let restRequests = 0;
  let writes = 0;
  let clock = Date.now();
  /** Strictly increasing ISO times, so `dateUpdated` changes on every write. */
  const now = (): string => {
    clock = Math.max(clock + 1, Date.now());
    return new Date(clock).toISOString();
  };

  const fake: FakeGrowthBook = {
    url: "",
    requests: [],
    get restRequests() {
      return restRequests;
    },
    get writes() {
      return writes;
    },
    resetCounters() {
      fake.requests.length = 0;
      restRequests = 0;
      writes = 0;
    },
    fail(route, failure) {
      failures.set(route, { failure, left: failure.times ?? Number.POSITIVE_INFINITY });
    },
    clearFailures() {
      failures.clear();
    },
    feature(id) {
      const found = features.get(id);
      return found === undefined ? undefined : structuredClone(found);
    },
    editFeature(id, edit) {
      const found = features.get(id);
      if (found === undefined) throw new Error(`fake growthbook: no feature ${id}`);
      edit(found);
      bump(found, "Edited by hand");
    },
    deleteFeature(id) {
      if (!features.delete(id)) throw new Error(`fake growthbook: no feature ${id}`);
    },
    sdkPayload(clientKey) {
      return sdkPayload(clientKey);
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  function bump(feature: FakeGrowthBookFeature, comment: string): void {
    const date = now();
    feature.dateUpdated = date;
    feature.revision = {
      version: feature.revision.version + 1,
      comment,
      date,
      createdBy: "API",
      publishedBy: "API",
    };
  }

  function apiFeature(feature: FakeGrowthBookFeature): Record<string, unknown> {
    const envs: Record<string, unknown> = {};
    for (const env of environments) {
      const settings = feature.environments[env] ?? { enabled: false, rules: [] };
      const definition = featureDefinition(feature, env);
      envs[env] = {
        enabled: settings.enabled,
        defaultValue: feature.defaultValue,
        rules: structuredClone(settings.rules),
        ...(definition === null ? {} : { definition: JSON.stringify(definition) }),
      };
    }
    return { ...structuredClone(feature), environments: envs };
  }

  function sdkPayload(clientKey: string): Record<string, unknown> {
    const connection = (options.sdkConnections ?? []).find((c) => c.clientKey === clientKey);
    if (connection === undefined) throw new HttpError(400, "Invalid API Key");
    const served: Record<string, unknown> = {};
    let dateUpdated = "";
    for (const feature of features.values()) {
      const scoped = connection.projects ?? [];
      if (scoped.length > 0 && !scoped.includes(feature.project)) continue;
      const definition = featureDefinition(feature, connection.environment);
      if (definition === null) continue;
      served[feature.id] = definition;
      if (feature.dateUpdated > dateUpdated) dateUpdated = feature.dateUpdated;
    }
    return { status: 200, features: served, experiments: [], dateUpdated: dateUpdated || new Date(0).toISOString() };
  }

  function authorize(req: IncomingMessage, write: boolean): string {
    const header = req.headers.authorization;
    let key: string | undefined;
    if (header?.startsWith("Bearer ")) key = header.slice(7).trim();
    else if (header?.startsWith("Basic ")) {
      key = Buffer.from(header.slice(6).trim(), "base64").toString("utf8").replace(/:$/u, "");
    }
    if (key === undefined || key === "") throw new HttpError(401, "Missing API key in request");
    const readOnly = (options.readOnlyKeys ?? []).includes(key);
    if (!options.apiKeys.includes(key) && !readOnly) throw new HttpError(401, "Invalid API key");
    if (write && readOnly) throw new HttpError(403, "You do not have permission to perform this action");
    return key;
  }

  function rateLimit(key: string): Record<string, string> | null {
    const limit = options.rateLimitPerMinute;
    if (limit === undefined) return null;
    const t = Date.now();
    let window = windows.get(key);
    if (window === undefined || t - window.start >= 60_000) {
      window = { start: t, count: 0 };
      windows.set(key, window);
    }
    window.count += 1;
    const reset = Math.max(1, Math.ceil((window.start + 60_000 - t) / 1000));
    const headers = {
      "RateLimit-Limit": String(limit),
      "RateLimit-Remaining": String(Math.max(0, limit - window.count)),
      "RateLimit-Reset": String(reset),
    };
    if (window.count > limit) return { ...headers, "Retry-After": String(reset) };
    return null;
  }

  function handleRest(
    route: FakeGrowthBookRoute,
    method: string,
    id: string | undefined,
    query: URLSearchParams,
    body: unknown,
    key: string,
  ): unknown {
    switch (route) {
      case "listFeatures":
        return listFeatures(query);
      case "getFeature":
        return { feature: apiFeature(mustFind(id ?? "", "Could not find a feature with that key")) };
      case "postFeature":
        return { feature: apiFeature(createFeature(body, key)) };
      case "updateFeature":
        return { feature: apiFeature(updateFeature(id ?? "", body)) };
      case "toggleFeature":
        return { feature: apiFeature(toggleFeature(id ?? "", body)) };
      case "deleteFeature":
        mustFind(id ?? "", "Could not find a feature with that key");
        features.delete(id ?? "");
        return { deletedId: id };
      default:
        throw new HttpError(404, `Unknown route ${method}`);
    }
  }

  function mustFind(id: string, message: string): FakeGrowthBookFeature {
    const found = features.get(id);
    if (found === undefined) throw new HttpError(400, message);
    return found;
  }

  function listFeatures(query: URLSearchParams): Record<string, unknown> {
    const limit = query.has("limit") ? Number(query.get("limit")) : 10;
    const offset = query.has("offset") ? Number(query.get("offset")) : 0;
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
      throw new HttpError(400, "Request query: [limit] Number must be between 1 and 100");
    }
    if (!Number.isInteger(offset) || offset < 0) {
      throw new HttpError(400, "Request query: [offset] Number must be greater than or equal to 0");
    }
    const projectId = query.get("projectId");
    const all = [...features.values()]
      .filter((f) => projectId === null || projectId === "" || f.project === projectId)
      .sort((a, b) => a.dateCreated.localeCompare(b.dateCreated));
    const page = all.slice(offset, offset + limit);
    const hasMore = offset + limit < all.length;
    return {
      features: page.map(apiFeature),
      limit,
      offset,
      count: page.length,
      total: all.length,
      hasMore,
      nextOffset: hasMore ? offset + limit : null,
    };
  }

  function createFeature(body: unknown, key: string): FakeGrowthBookFeature {
    const b = record(body, "Request body");
    allowOnly(b, [
      "id",
      "archived",
      "description",
      "owner",
      "project",
      "valueType",
      "defaultValue",
      "tags",
      "environments",
      "prerequisites",
      "jsonSchema",
      "customFields",
    ]);
    const id = b.id;
    if (typeof id !== "string" || id === "") throw new HttpError(400, "Request body: [id] Required");
    if (!["boolean", "string", "number", "json"].includes(b.valueType as string)) {
      throw new HttpError(400, "Request body: [valueType] Invalid enum value");
    }
    if (typeof b.defaultValue !== "string") throw new HttpError(400, "Request body: [defaultValue] Required");
    if (features.has(id)) throw new HttpError(400, `Feature id '${id}' already exists.`);
    if (!FEATURE_ID.test(id)) {
      throw new HttpError(400, "Feature keys can only include letters, numbers, hyphens, and underscores.");
    }
    const project = optionalString(b.project, "project");
    if (project !== "" && !projects.includes(project))
      throw new HttpError(400, `Project id ${project} is not a valid project.`);
    const owner = optionalString(b.owner, "owner");
    if (owner === "" && !key.startsWith("secret_user_")) {
      throw new HttpError(
        400,
        "Must specify an `owner` in the request body. The `owner` field is only optional when authenticating with a Personal Access Token (PAT).",
      );
    }
    const envs = envSettings(b.environments);
    const date = now();
    const feature: FakeGrowthBookFeature = {
      id,
      dateCreated: date,
      dateUpdated: date,
      archived: b.archived === true,
      description: optionalString(b.description, "description"),
      owner: owner === "" ? "u_pat_user" : owner,
      project,
      valueType: b.valueType as FakeGrowthBookFeature["valueType"],
      defaultValue: b.defaultValue,
      tags: stringArray(b.tags, "tags"),
      environments: {},
      prerequisites: stringArray(b.prerequisites, "prerequisites"),
      revision: { version: 1, comment: "New feature", date, createdBy: "API", publishedBy: "API" },
    };
    for (const env of environments) {
      const given = envs[env];
      feature.environments[env] = {
        enabled: given?.enabled ?? false,
        rules: given?.rules === undefined ? [] : parseRules(given.rules, feature, `environments.${env}.rules`),
      };
    }
    features.set(id, feature);
    return feature;
  }

  function updateFeature(id: string, body: unknown): FakeGrowthBookFeature {
    const feature = mustFind(id, `Feature id '${id}' not found.`);
    const b = record(body, "Request body");
    allowOnly(b, [
      "description",
      "archived",
      "project",
      "owner",
      "defaultValue",
      "tags",
      "environments",
      "prerequisites",
      "jsonSchema",
      "customFields",
    ]);
    const next = structuredClone(feature);
    if (b.description !== undefined) next.description = optionalString(b.description, "description");
    if (b.archived !== undefined) {
      if (typeof b.archived !== "boolean") throw new HttpError(400, "Request body: [archived] Expected boolean");
      next.archived = b.archived;
    }
    if (b.project !== undefined) {
      const project = optionalString(b.project, "project");
      if (project !== "" && !projects.includes(project))
        throw new HttpError(400, `Project id ${project} is not a valid project.`);
      next.project = project;
    }
    if (b.owner !== undefined) next.owner = optionalString(b.owner, "owner");
    if (b.defaultValue !== undefined) {
      if (typeof b.defaultValue !== "string") throw new HttpError(400, "Request body: [defaultValue] Expected string");
      next.defaultValue = b.defaultValue;
    }
    if (b.tags !== undefined) next.tags = stringArray(b.tags, "tags");
    if (b.prerequisites !== undefined) next.prerequisites = stringArray(b.prerequisites, "prerequisites");
    const envs = envSettings(b.environments);
    for (const [env, given] of Object.entries(envs)) {
      const current = next.environments[env] ?? { enabled: false, rules: [] };
      next.environments[env] = {
        enabled: given.enabled ?? current.enabled,
        rules:
          given.rules === undefined
            ? current.rules
            : parseRules(given.rules, next, `environments.${env}.rules`, current.rules),
      };
    }
    const { dateUpdated: _d, revision: _r, ...before } = feature;
    const { dateUpdated: _d2, revision: _r2, ...after } = next;
    if (JSON.stringify(before) !== JSON.stringify(after)) {
      Object.assign(feature, next);
      bump(feature, "Created via REST API");
    }
    return feature;
  }

  function toggleFeature(id: string, body: unknown): FakeGrowthBookFeature {
    const b = record(body, "Request body");
    allowOnly(b, ["environments", "reason"]);
    const envs = record(b.environments, "Request body: [environments]");
    const feature = mustFind(id, "Could not find a feature with that key");
    let changed = false;
    for (const [env, raw] of Object.entries(envs)) {
      if (!environments.includes(env)) throw new HttpError(400, `Unknown environment: '${env}'`);
      if (![true, false, "true", "false", "1", "0", 1, 0, ""].includes(raw as never)) {
        throw new HttpError(400, `Request body: [environments.${env}] Invalid input`);
      }
      const state = [true, "true", "1", 1].includes(raw as never);
      const settings = feature.environments[env] ?? { enabled: false, rules: [] };
      if (settings.enabled !== state) {
        feature.environments[env] = { ...settings, enabled: state };
        changed = true;
      }
    }
    if (changed) bump(feature, typeof b.reason === "string" ? b.reason : "Toggled via REST API");
    return feature;
  }

  function envSettings(raw: unknown): Record<string, { enabled?: boolean; rules?: unknown }> {
    if (raw === undefined) return {};
    const envs = record(raw, "Request body: [environments]");
    const out: Record<string, { enabled?: boolean; rules?: unknown }> = {};
    const unknown = Object.keys(envs).filter((k) => !environments.includes(k));
    if (unknown.length > 0) {
      throw new HttpError(
        400,
        `Environment key(s) '${unknown.join("', '")}' not recognized. Please create the environment or remove it from your environment settings and try again.`,
      );
    }
    for (const [env, value] of Object.entries(envs)) {
      const settings = record(value, `Request body: [environments.${env}]`);
      allowOnly(settings, ["enabled", "rules", "definition", "draft"]);
      if (settings.enabled !== undefined && typeof settings.enabled !== "boolean") {
        throw new HttpError(400, `Request body: [environments.${env}.enabled] Expected boolean`);
      }
      out[env] = {
        ...(settings.enabled === undefined ? {} : { enabled: settings.enabled as boolean }),
        ...(settings.rules === undefined ? {} : { rules: settings.rules }),
      };
    }
    return out;
  }

  /** The request's rules (postFeature / updateFeature schemas) as the API answers them; ids and tracking keys filled in. */
  function parseRules(
    raw: unknown,
    feature: FakeGrowthBookFeature,
    at: string,
    existing: readonly FakeGrowthBookRule[] = [],
  ): FakeGrowthBookRule[] {
    if (!Array.isArray(raw)) throw new HttpError(400, `Request body: [${at}] Expected array`);
    return raw.map((item, i) => {
      const r = record(item, `Request body: [${at}.${i}]`);
      ruleSeq += 1;
      const base = {
        id: typeof r.id === "string" && r.id !== "" ? r.id : `fr_fake${ruleSeq.toString(36)}`,
        description: optionalString(r.description, `${at}.${i}.description`),
        condition: optionalString(r.condition, `${at}.${i}.condition`),
        enabled: r.enabled === undefined ? true : r.enabled === true,
        savedGroupTargeting: [],
        prerequisites: Array.isArray(r.prerequisites) ? (r.prerequisites as FakeGrowthBookRule["prerequisites"]) : [],
        ...(Array.isArray(r.scheduleRules) ? { scheduleRules: r.scheduleRules } : {}),
      };
      if (base.condition !== "") {
        try {
          JSON.parse(base.condition);
        } catch {
          throw new HttpError(400, "Invalid targeting condition JSON: Unexpected token");
        }
      }
      switch (r.type) {
        case "force":
          allowOnly(r, [...COMMON_RULE_FIELDS, "value", "sparse", "savedGroups"]);
          return { ...base, type: "force", value: valueString(r.value, feature, `${at}.${i}.value`) };
        case "rollout":
          allowOnly(r, [...COMMON_RULE_FIELDS, "value", "sparse", "coverage", "hashAttribute", "seed", "hashVersion"]);
          if (typeof r.coverage !== "number" || typeof r.hashAttribute !== "string") {
            throw new HttpError(400, `Request body: [${at}.${i}] coverage and hashAttribute are required`);
          }
          return {
            ...base,
            type: "rollout",
            value: valueString(r.value, feature, `${at}.${i}.value`),
            coverage: r.coverage,
            hashAttribute: r.hashAttribute,
            seed: typeof r.seed === "string" ? r.seed : base.id,
          };
        case "experiment": {
          allowOnly(r, [
            ...COMMON_RULE_FIELDS,
            "trackingKey",
            "hashAttribute",
            "fallbackAttribute",
            "disableStickyBucketing",
            "bucketVersion",
            "minBucketVersion",
            "namespace",
            "coverage",
            "values",
            "value",
          ]);
          if (typeof r.condition !== "string")
            throw new HttpError(400, `Request body: [${at}.${i}.condition] Required`);
          const values = r.values ?? r.value;
          if (values === undefined) throw new HttpError(400, "Missing values");
          if (!Array.isArray(values)) throw new HttpError(400, `Request body: [${at}.${i}.values] Expected array`);
          const parsed = values.map((v, j) => {
            const value = record(v, `Request body: [${at}.${i}.values.${j}]`);
            allowOnly(value, ["value", "weight", "name"]);
            if (typeof value.weight !== "number") {
              throw new HttpError(400, `Request body: [${at}.${i}.values.${j}.weight] Expected number`);
            }
            return {
              value: valueString(value.value, feature, `Variation ${j + 1}`),
              weight: value.weight,
              ...(typeof value.name === "string" ? { name: value.name } : {}),
            };
          });
          const previous = existing.find((e) => e.id === base.id);
          return {
            ...base,
            type: "experiment",
            coverage: typeof r.coverage === "number" ? r.coverage : 1,
            trackingKey:
              typeof r.trackingKey === "string" && r.trackingKey !== ""
                ? r.trackingKey
                : (previous?.trackingKey ?? feature.id),
            hashAttribute: typeof r.hashAttribute === "string" ? r.hashAttribute : "",
            ...(isRecord(r.namespace) ? { namespace: r.namespace as FakeGrowthBookRule["namespace"] } : {}),
            value: parsed,
          };
        }
        case "experiment-ref":
          throw new HttpError(400, `Request body: [${at}.${i}.experimentId] unknown experiment`);
        default:
          throw new HttpError(400, `Request body: [${at}.${i}.type] Invalid discriminator value`);
      }
    });
  }

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      let body: unknown = text === "" ? null : text;
      try {
        if (text !== "") body = JSON.parse(text);
      } catch {
        // kept as text
      }
      const url = new URL(req.url ?? "/", "http://localhost");
      const method = req.method ?? "GET";
      const { route, id } = routeOf(method, url.pathname);
      fake.requests.push({
        method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        route,
        authorization: req.headers.authorization,
        body,
      });
      if (route !== "sdkPayload") restRequests += 1;
      if (route !== null && route !== "sdkPayload" && (method === "POST" || method === "DELETE")) writes += 1;

      const injected = route === null ? undefined : failures.get(route);
      if (injected !== undefined && injected.left > 0) {
        injected.left -= 1;
        const f = injected.failure;
        const status = f.status ?? 200;
        const reply = () =>
          send(res, status, f.body ?? { message: `Injected failure ${status}` }, { ...(f.headers ?? {}) });
        if (f.delayMs !== undefined) setTimeout(reply, f.delayMs).unref();
        else reply();
        return;
      }
      try {
        if (route === null) throw new HttpError(404, "Unknown API route");
        if (route === "sdkPayload") {
          send(res, 200, sdkPayload(decodeURIComponent(id ?? "")));
          return;
        }
        const key = authorize(req, method !== "GET");
        const limited = rateLimit(key);
        if (limited !== null) {
          send(res, 429, { message: `Too many requests, limit to ${options.rateLimitPerMinute} per minute` }, limited);
          return;
        }
        if (text !== "" && typeof body === "string") throw new HttpError(400, "Request body is not valid JSON");
        send(res, 200, handleRest(route, method, id, url.searchParams, body, key));
      } catch (error) {
        const status = error instanceof HttpError ? error.status : 500;
        send(res, status, { message: error instanceof Error ? error.message : String(error) });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  (fake as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

const COMMON_RULE_FIELDS = [
  "id",
  "type",
  "description",
  "condition",
  "enabled",
  "prerequisites",
  "scheduleRules",
  "savedGroupTargeting",
  "allProjects",
  "projects",
];

function routeOf(method: string, path: string): { route: FakeGrowthBookRoute | null; id?: string } {
  const sdk = /^\/api\/features\/([^/]+)\/?$/u.exec(path);
  if (sdk !== null && method === "GET") return { route: "sdkPayload", id: sdk[1] };
  if (path === "/api/v1/features" || path === "/api/v1/features/") {
    if (method === "GET") return { route: "listFeatures" };
    if (method === "POST") return { route: "postFeature" };
    return { route: null };
  }
  const toggle = /^\/api\/v1\/features\/([^/]+)\/toggle$/u.exec(path);
  if (toggle !== null && method === "POST") return { route: "toggleFeature", id: decodeURIComponent(toggle[1] ?? "") };
  const one = /^\/api\/v1\/features\/([^/]+)$/u.exec(path);
  if (one !== null) {
    const id = decodeURIComponent(one[1] ?? "");
    if (method === "GET") return { route: "getFeature", id };
    if (method === "POST") return { route: "updateFeature", id };
    if (method === "DELETE") return { route: "deleteFeature", id };
  }
  return { route: null };
}

/** The SDK definition of a feature in an environment, as `getFeatureDefinition`; null when it is not served. */
function featureDefinition(feature: FakeGrowthBookFeature, env: string): Record<string, unknown> | null {
  const settings = feature.environments[env];
  if (settings === undefined || !settings.enabled || feature.archived) return null;
  const rules: Record<string, unknown>[] = [];
  for (const r of settings.rules) {
    if (!r.enabled) continue;
    const rule: Record<string, unknown> = {};
    if (r.condition !== "" && r.condition !== "{}") {
      try {
        const parsed: unknown = JSON.parse(r.condition);
        if (parsed) rule.condition = parsed;
      } catch {
        // the back-end ignores a condition it cannot parse
      }
    }
    if (r.type === "force") {
      rule.force = sdkValue(feature, r.value as string);
    } else if (r.type === "rollout") {
      rule.force = sdkValue(feature, r.value as string);
      const coverage = Math.min(1, Math.max(0, r.coverage ?? 1));
      if (coverage < 1) {
        rule.coverage = coverage;
        if (r.hashAttribute) rule.hashAttribute = r.hashAttribute;
        if (r.seed) rule.seed = r.seed;
      }
    } else if (r.type === "experiment") {
      const values = r.value as FakeGrowthBookValue[];
      rule.variations = values.map((v) => sdkValue(feature, v.value));
      rule.coverage = r.coverage;
      rule.weights = values.map((v) => Math.min(1, Math.max(0, v.weight))).map((w) => Math.round(w * 10000) / 10000);
      rule.meta = values.map((v, i) => ({ key: `${i}`, ...(v.name ? { name: v.name } : {}) }));
      if (r.trackingKey) rule.key = r.trackingKey;
      if (r.hashAttribute) rule.hashAttribute = r.hashAttribute;
    } else {
      continue;
    }
    rules.push(rule);
  }
  return { defaultValue: sdkValue(feature, feature.defaultValue), ...(rules.length > 0 ? { rules } : {}) };
}

/** `getJSONValue`: a value string as the SDK gets it for the feature's value type. */
function sdkValue(feature: FakeGrowthBookFeature, value: string): unknown {
  switch (feature.valueType) {
    case "boolean":
      return value !== "false" && value !== "";
    case "number":
      return Number(value) || 0;
    case "json":
      try {
        return JSON.parse(value);
      } catch {
        return null;
      }
    default:
      return value;
  }
}

function valueString(value: unknown, feature: FakeGrowthBookFeature, at: string): string {
  if (typeof value !== "string") throw new HttpError(400, `${at}: Expected string`);
  if (feature.valueType === "boolean" && value !== "true" && value !== "false") {
    throw new HttpError(400, `${at}: ${JSON.stringify(value)} is not a boolean`);
  }
  return value;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", ...headers });
  res.end(typeof body === "string" ? body : JSON.stringify(body));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function record(value: unknown, at: string): Record<string, unknown> {
  if (!isRecord(value)) throw new HttpError(400, `${at}: Expected object`);
  return value;
}

function allowOnly(value: Record<string, unknown>, allowed: readonly string[]): void {
  const extra = Object.keys(value).filter((k) => !allowed.includes(k));
  if (extra.length > 0)
    throw new HttpError(400, `Request body: Unrecognized key(s) in object: '${extra.join("', '")}'`);
}

function optionalString(value: unknown, field: string): string {
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") throw new HttpError(400, `Request body: [${field}] Expected string`);
  return value;
}

function stringArray(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new HttpError(400, `Request body: [${field}] Expected array of strings`);
  }
  return value as string[];
}
