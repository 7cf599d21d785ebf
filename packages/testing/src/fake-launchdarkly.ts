/**
 * A local stand-in for LaunchDarkly: the part of its REST API that creates a
 * flag, changes its targeting in one environment, lists flags and asks for
 * approvals, and the server-side SDK's polling endpoint that serves the flag
 * data those changes produce. It follows LaunchDarkly's published API
 * description, the OpenAPI document (app.launchdarkly.com/api/v2/openapi.json,
 * version 2.0) as generated into the official client
 * github.com/launchdarkly/api-client-typescript (npm launchdarkly-api-typescript
 * 17.2.0: `api.ts`, `README.md`):
 *
 * - `GET /api/v2/flags/{projectKey}` (getFeatureFlags): `env`, `limit`
 *   (default 20; clamped here to 100), `offset`, `summary` (by default flags
 *   omit `prerequisites`, `targets`, `contextTargets` and `rules`; `summary=0`
 *   or `false` includes them) and `filter` (comma-separated `field:value`;
 *   served: `query` — the string in the key or name, case-insensitive —,
 *   `tags` — `+`-separated, all of them — and `filterEnv`). Answers
 *   `FeatureFlags` `{ items, _links: { self, first, prev?, next?, last },
 *   totalCount }`; per API version 20240415 (README, "API version changelog")
 *   a flag's `environments` are present only when the request filters by
 *   environment with `filterEnv` (here also `env`), and only those.
 * - `GET /api/v2/flags/{projectKey}/{featureFlagKey}` (getFeatureFlag), `env`.
 * - `POST /api/v2/flags/{projectKey}` (postFeatureFlag): `FeatureFlagBody`
 *   `{ name, key, description?, variations?: [{ value, name?, description? }],
 *   temporary?, tags?, defaults?: { onVariation, offVariation } }`; 201
 *   `FeatureFlag`, every environment off, serving `defaults.onVariation` as its
 *   fallthrough and `defaults.offVariation` when off; 409 when the key exists.
 * - `PATCH /api/v2/flags/{projectKey}/{featureFlagKey}` (patchFeatureFlag), the
 *   semantic patch only (`Content-Type: application/json;
 *   domain-model=launchdarkly.semanticpatch`; without it the body would be a
 *   JSON patch: 400 here), `{ environmentKey, instructions, comment? }` with
 *   the instructions `turnFlagOn`, `turnFlagOff`,
 *   `updateFallthroughVariationOrRollout` (`variationId`, or `rolloutWeights`
 *   — variation id → thousandths of a percent summing to 100000 —,
 *   `rolloutBucketBy`, `rolloutContextKind` default `user`),
 *   `updateOffVariation` (`variationId`) and `addVariation` (`value`, `name`,
 *   `description`); all apply or none. An environment that requires approvals
 *   answers 405 ("Required approvals": "the request will fail with a 405").
 *   200 `FeatureFlag` with every environment.
 * - `DELETE /api/v2/flags/{projectKey}/{featureFlagKey}` (deleteFeatureFlag): 204.
 * - `GET` and `POST /api/v2/projects/{projectKey}/flags/{featureFlagKey}/environments/{environmentKey}/approval-requests`
 *   (getApprovalsForFlag, postApprovalRequestForFlag):
 *   `CreateFlagConfigApprovalRequestRequest` `{ description, instructions,
 *   comment?, notifyMemberIds? }` → 201 `FlagConfigApprovalRequestResponse`
 *   `{ _id, _version, creationDate, serviceKind, description, reviewStatus,
 *   allReviews, notifyMemberIds, status, instructions, conflicts, _links }`;
 *   the list answers `{ items, _links }`.
 *
 * Authentication is the access token as the whole `Authorization` header
 * (README, "Authentication using request header"); a wrong one is 401. Errors
 * have the common shape `{ code, message, id }` (README, "Errors"). Every API
 * answer carries `X-Ratelimit-Global-Remaining` and `X-Ratelimit-Reset` (epoch
 * milliseconds of the next ten-second window; README, "Rate limiting").
 *
 * The SDK side is what `@launchdarkly/node-server-sdk` 9 polls with
 * `stream: false` (js-server-sdk-common `Requestor`: `GET {baseUri}/sdk/latest-all`,
 * the SDK key as `Authorization`, `If-None-Match` with the last `ETag`): `{
 * flags: { <key>: Flag }, segments: {} }` in the SDK's flag data model
 * (js-server-sdk-common `evaluation/data/Flag.ts`: `key, version, on, salt,
 * variations` — the values —, `fallthrough: { variation } | { rollout: {
 * variations: [{ variation, weight }], bucketBy?, contextKind? } }` with
 * weights in thousandths of a percent, `offVariation, prerequisites, targets,
 * contextTargets, rules, trackEvents, trackEventsFallthrough, deleted`), so
 * the official SDK evaluates what the REST API wrote.
 *
 * Tests count requests and writes, make any operation answer a chosen status,
 * headers, raw body (chunked, without a length, when the headers name
 * `Transfer-Encoding`) or delay, edit a flag by hand, require approvals in an
 * environment and apply a pending approval request.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** The operations served, by the OpenAPI `operationId` (`sdkLatestAll`: the SDK's polling endpoint). */
export type FakeLaunchDarklyOperation =
  | "getFeatureFlags"
  | "getFeatureFlag"
  | "postFeatureFlag"
  | "patchFeatureFlag"
  | "deleteFeatureFlag"
  | "getApprovalsForFlag"
  | "postApprovalRequestForFlag"
  | "sdkLatestAll";

/** A request as the fake received it (`operation` null for a path it does not serve). */
export interface FakeLaunchDarklyRequest {
  readonly operation: FakeLaunchDarklyOperation | null;
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingMessage["headers"];
  readonly body: unknown;
}

/**
 * An answer put in place of the fake's own for one operation: a status (default
 * 200), headers, a body (a string is sent as is, anything else as JSON) and a
 * delay. With only `delayMs`, the fake's own answer comes after the delay.
 */
export interface FakeLaunchDarklyFailure {
  readonly status?: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: unknown;
  readonly delayMs?: number;
  /** How many requests it answers; default every one until `clearFailures()`. */
  readonly times?: number;
}

/** A variation as the REST API represents it. */
export interface FakeLaunchDarklyVariation {
  _id: string;
  value: unknown;
  name?: string;
  description?: string;
}

/** A weighted variation of a rollout: index into `variations`, thousandths of a percent. */
export interface FakeLaunchDarklyWeightedVariation {
  variation: number;
  weight: number;
}

/** The fallthrough (default rule): one variation, or a percentage rollout. */
export interface FakeLaunchDarklyFallthrough {
  variation?: number;
  rollout?: {
    variations: FakeLaunchDarklyWeightedVariation[];
    bucketBy?: string;
    contextKind?: string;
    seed?: number;
  };
}

/** A flag's configuration in one environment (`FeatureFlagConfig`). */
export interface FakeLaunchDarklyEnvironmentConfig {
  on: boolean;
  archived: boolean;
  salt: string;
  sel: string;
  lastModified: number;
  version: number;
  targets: unknown[];
  contextTargets: unknown[];
  rules: unknown[];
  fallthrough: FakeLaunchDarklyFallthrough;
  offVariation?: number;
  prerequisites: unknown[];
  _site: { href: string; type: string };
  _environmentName: string;
  trackEvents: boolean;
  trackEventsFallthrough: boolean;
}

/** A stored flag (`FeatureFlag`, with every environment). */
export interface FakeLaunchDarklyFlag {
  name: string;
  kind: "boolean" | "multivariate";
  description: string;
  key: string;
  _version: number;
  creationDate: number;
  variations: FakeLaunchDarklyVariation[];
  temporary: boolean;
  tags: string[];
  archived: boolean;
  deprecated: boolean;
  environments: Record<string, FakeLaunchDarklyEnvironmentConfig>;
}

/** A stored approval request for a flag in an environment (`FlagConfigApprovalRequestResponse`). */
export interface FakeLaunchDarklyApproval {
  _id: string;
  _version: number;
  creationDate: number;
  serviceKind: string;
  description: string;
  reviewStatus: "approved" | "declined" | "pending";
  allReviews: unknown[];
  notifyMemberIds: string[];
  status: "pending" | "completed" | "failed" | "scheduled";
  instructions: Record<string, unknown>[];
  conflicts: unknown[];
  appliedDate?: number;
  _links: Record<string, { href: string; type: string }>;
  /** Not in the representation: which flag and environment it is for. */
  readonly flagKey: string;
  readonly environmentKey: string;
}

export interface FakeLaunchDarkly {
  /** The base URL, `http://127.0.0.1:<port>`: the REST API's and the SDK's (`baseUri`). */
  readonly url: string;
  /** The access token the REST API accepts. */
  readonly accessToken: string;
  /** The one project served. */
  readonly projectKey: string;
  /** The SDK key of an environment (what the SDK sends to `/sdk/latest-all`). */
  sdkKey(environment: string): string;
  /** Every request received, in order. */
  readonly requests: FakeLaunchDarklyRequest[];
  /** How many requests of `operation` (all when absent) were received. */
  count(operation?: FakeLaunchDarklyOperation): number;
  /** How many REST writes (POST, PATCH, DELETE) were received, answered or not. */
  writes(): number;
  /** Answer `operation` with `failure` instead of its own answer. */
  fail(operation: FakeLaunchDarklyOperation, failure: FakeLaunchDarklyFailure): void;
  clearFailures(): void;
  /** The stored flag (its live object; use `editFlag` to change it). */
  flag(key: string): FakeLaunchDarklyFlag | undefined;
  /**
   * Change a flag's configuration in an environment by hand, as a person in the
   * UI would; the flag's and the environment's versions go up.
   */
  editFlag(
    key: string,
    environment: string,
    edit: (config: FakeLaunchDarklyEnvironmentConfig, flag: FakeLaunchDarklyFlag) => void,
  ): void;
  /** Delete a flag by hand. */
  deleteFlag(key: string): void;
  /** From now on, changes to flags' targeting in `environment` need an approval request (405 otherwise). */
  requireApprovals(environment: string, required?: boolean): void;
  /** Every approval request, in order of creation. */
  readonly approvals: FakeLaunchDarklyApproval[];
  /** Approve and apply a pending approval request, as its reviewers would. */
  applyApproval(id: string): void;
  close(): Promise<void>;
}

export interface FakeLaunchDarklyOptions {
  readonly accessToken?: string;
  readonly projectKey?: string;
  /** Environment keys; default `production` and `test`. */
  readonly environments?: readonly string[];
}

const SEMANTIC_PATCH = "domain-model=launchdarkly.semanticpatch";
const KEY = /^[A-Za-z0-9][A-Za-z0-9._-]*$/u;
const ENVIRONMENT_INSTRUCTIONS = new Set([
  "turnFlagOn",
  "turnFlagOff",
  "updateFallthroughVariationOrRollout",
  "updateOffVariation",
]);

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Starts the fake on a free loopback port. */
export async function startFakeLaunchDarkly(options: FakeLaunchDarklyOptions = {}): Promise<FakeLaunchDarkly> {
  const accessToken = options.accessToken ?? `api-${randomUUID()}`;
  const projectKey = options.projectKey ?? "default";
  const environments = [...(options.environments ?? ["production", "test"])];
  const sdkKeys = new Map(environments.map((env) => [env, `sdk-${randomUUID()}`]));
  const flags = new Map<string, FakeLaunchDarklyFlag>();
  const failures = new Map<FakeLaunchDarklyOperation, { failure: FakeLaunchDarklyFailure; left: number }>();
  const approvalEnvironments = new Set<string>();
  const requests: FakeLaunchDarklyRequest[] = [];
  const approvals: FakeLaunchDarklyApproval[] = [];

  const bump = (flag: FakeLaunchDarklyFlag, environment: string | null): void => {
    flag._version++;
    const now = Date.now();
    for (const [key, config] of Object.entries(flag.environments)) {
      if (environment === null || key === environment) {
        config.version++;
        config.lastModified = now;
      }
    }
  };

  const route = async (request: FakeLaunchDarklyRequest, auth: string | undefined): Promise<Answer> => {
    const { method, path, query } = request;
    if (request.operation === "sdkLatestAll") {
      const environment = [...sdkKeys].find(([, key]) => key === auth)?.[0];
      if (environment === undefined) return { status: 401, body: "" };
      return sdkPayload(flags, environment);
    }
    if (auth !== accessToken) throw new ApiError(401, "unauthorized", "Invalid access token");
    const parts = path.split("/").slice(1).map(decodeURIComponent);
    if (parts[3] !== projectKey) throw new ApiError(404, "not_found", "Unknown project key");
    switch (request.operation) {
      case "getFeatureFlags":
        return { status: 200, body: listFlags(flags, projectKey, query) };
      case "getFeatureFlag": {
        const flag = existing(flags, parts[4]);
        return { status: 200, body: represent(flag, projectKey, environmentsOf(query, null), query.get("summary")) };
      }
      case "postFeatureFlag": {
        const flag = createFlag(request.body, projectKey, environments);
        if (flags.has(flag.key)) throw new ApiError(409, "conflict", "A feature with that key already exists");
        flags.set(flag.key, flag);
        return { status: 201, body: represent(flag, projectKey, null, "0") };
      }
      case "patchFeatureFlag": {
        const flag = existing(flags, parts[4]);
        const contentType = String(request.headers["content-type"] ?? "");
        if (!contentType.includes(SEMANTIC_PATCH)) {
          throw new ApiError(400, "invalid_request", "Only semantic patches are served by this fake");
        }
        const patch = semanticPatch(request.body);
        const environment = patch.environmentKey;
        if (environment !== undefined && !environments.includes(environment)) {
          throw new ApiError(400, "invalid_request", `Unknown environment key "${environment}"`);
        }
        const touchesEnvironment = patch.instructions.some((i) => ENVIRONMENT_INSTRUCTIONS.has(String(i.kind)));
        if (environment !== undefined && touchesEnvironment && approvalEnvironments.has(environment)) {
          throw new ApiError(
            405,
            "method_not_allowed",
            `Approval is required to make changes to the flag in environment "${environment}"; create an approval request`,
          );
        }
        const changed = applyInstructions(flag, environment, patch.instructions);
        flags.set(flag.key, changed);
        bump(changed, touchesEnvironment ? (environment ?? null) : null);
        return { status: 200, body: represent(changed, projectKey, null, "0") };
      }
      case "deleteFeatureFlag":
        existing(flags, parts[4]);
        flags.delete(parts[4] ?? "");
        return { status: 204, body: "" };
      case "getApprovalsForFlag": {
        existing(flags, parts[5]);
        const items = approvals.filter((a) => a.flagKey === parts[5] && a.environmentKey === parts[7]);
        return { status: 200, body: { items: items.map(approvalBody), _links: { self: link(path) } } };
      }
      case "postApprovalRequestForFlag": {
        const flag = existing(flags, parts[5]);
        const environment = parts[7] ?? "";
        if (!environments.includes(environment)) throw new ApiError(404, "not_found", "Unknown environment key");
        const body = objectBody(request.body);
        if (typeof body.description !== "string" || body.description === "") {
          throw new ApiError(400, "invalid_request", "description is required");
        }
        const instructions = instructionList(body.instructions);
        applyInstructions(flag, environment, instructions); // validated now, applied when approved
        const id = randomBytes(12).toString("hex");
        const approval: FakeLaunchDarklyApproval = {
          _id: id,
          _version: 1,
          creationDate: Date.now(),
          serviceKind: "launchdarkly",
          description: body.description,
          reviewStatus: "pending",
          allReviews: [],
          notifyMemberIds: Array.isArray(body.notifyMemberIds) ? body.notifyMemberIds.map(String) : [],
          status: "pending",
          instructions,
          conflicts: [],
          _links: { self: link(`${path}/${id}`) },
          flagKey: flag.key,
          environmentKey: environment,
        };
        approvals.push(approval);
        return { status: 201, body: approvalBody(approval) };
      }
      default:
        throw new ApiError(404, "not_found", `No route for ${method} ${path}`);
    }
  };

  const server: Server = createServer((req, res) => {
    void handle(req, res);
  });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const method = req.method ?? "GET";
    const raw = await readBody(req);
    let body: unknown = null;
    let unparsable = false;
    if (raw !== "") {
      try {
        body = JSON.parse(raw);
      } catch {
        unparsable = true;
      }
    }
    const operation = operationOf(method, url.pathname);
    const request: FakeLaunchDarklyRequest = {
      operation,
      method,
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body,
    };
    requests.push(request);
    const limits = operation === "sdkLatestAll" ? {} : rateLimitHeaders();
    const injected = operation === null ? undefined : failures.get(operation);
    if (injected !== undefined && operation !== null) {
      injected.left--;
      if (injected.left <= 0) failures.delete(operation);
    }
    const failure = injected?.failure;
    if (failure?.delayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, failure.delayMs).unref());
    if (res.destroyed) return;
    if (failure !== undefined && (failure.status !== undefined || failure.body !== undefined)) {
      return send(res, failure.status ?? 200, failure.body ?? "", { ...limits, ...failure.headers });
    }
    try {
      if (unparsable) throw new ApiError(400, "invalid_request", "The request body is not JSON");
      const answer = await route(request, req.headers.authorization);
      if (operation === "sdkLatestAll" && answer.etag !== undefined) {
        if (req.headers["if-none-match"] === answer.etag) return send(res, 304, "", { ETag: answer.etag });
        return send(res, answer.status, answer.body, { ETag: answer.etag });
      }
      send(res, answer.status, answer.body, limits);
    } catch (error) {
      const known = error instanceof ApiError ? error : new ApiError(500, "internal_server_error", String(error));
      send(res, known.status, { code: known.code, message: known.message, id: randomUUID() }, limits);
    }
  };

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    accessToken,
    projectKey,
    sdkKey(environment) {
      const key = sdkKeys.get(environment);
      if (key === undefined) throw new Error(`fake LaunchDarkly: no environment "${environment}"`);
      return key;
    },
    requests,
    count: (operation) =>
      operation === undefined ? requests.length : requests.filter((r) => r.operation === operation).length,
    writes: () => requests.filter((r) => r.path.startsWith("/api/") && r.method !== "GET").length,
    fail(operation, failure) {
      failures.set(operation, { failure, left: failure.times ?? Number.POSITIVE_INFINITY });
    },
    clearFailures: () => failures.clear(),
    flag: (key) => flags.get(key),
    editFlag(key, environment, edit) {
      const flag = flags.get(key);
      const config = flag?.environments[environment];
      if (flag === undefined || config === undefined) {
        throw new Error(`fake LaunchDarkly: no flag "${key}" in "${environment}"`);
      }
      edit(config, flag);
      bump(flag, environment);
    },
    deleteFlag(key) {
      flags.delete(key);
    },
    requireApprovals(environment, required = true) {
      if (required) approvalEnvironments.add(environment);
      else approvalEnvironments.delete(environment);
    },
    approvals,
    applyApproval(id) {
      const approval = approvals.find((a) => a._id === id);
      if (approval === undefined || approval.status !== "pending") {
        throw new Error(`fake LaunchDarkly: no pending approval request "${id}"`);
      }
      const flag = flags.get(approval.flagKey);
      if (flag === undefined) throw new Error(`fake LaunchDarkly: the flag "${approval.flagKey}" is gone`);
      const changed = applyInstructions(flag, approval.environmentKey, approval.instructions);
      flags.set(changed.key, changed);
      bump(changed, approval.environmentKey);
      approval.status = "completed";
      approval.reviewStatus = "approved";
      approval.appliedDate = Date.now();
      approval._version++;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly etag?: string;
}

function operationOf(method: string, path: string): FakeLaunchDarklyOperation | null {
  if (method === "GET" && path === "/sdk/latest-all") return "sdkLatestAll";
  const parts = path.split("/").slice(1);
  if (parts[0] !== "api" || parts[1] !== "v2") return null;
  if (parts[2] === "flags" && parts.length === 4) {
    if (method === "GET") return "getFeatureFlags";
    if (method === "POST") return "postFeatureFlag";
  }
  if (parts[2] === "flags" && parts.length === 5) {
    if (method === "GET") return "getFeatureFlag";
    if (method === "PATCH") return "patchFeatureFlag";
    if (method === "DELETE") return "deleteFeatureFlag";
  }
  if (parts[2] === "projects" && parts[4] === "flags" && parts[6] === "environments") {
    if (parts[8] === "approval-requests" && parts.length === 9) {
      if (method === "GET") return "getApprovalsForFlag";
      if (method === "POST") return "postApprovalRequestForFlag";
    }
  }
  return null;
}

function rateLimitHeaders(): Record<string, string> {
  const windowMs = 10_000;
  return {
    "X-Ratelimit-Global-Remaining": "100",
    "X-Ratelimit-Reset": String(Math.ceil((Date.now() + 1) / windowMs) * windowMs),
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Sends an answer with its `Content-Length`, or in 64 KiB chunks without one
 * when `headers` name `Transfer-Encoding` (a failure's headers may).
 */
function send(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>>): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const payload = status === 204 || status === 304 ? Buffer.alloc(0) : Buffer.from(text, "utf8");
  const chunked = Object.keys(headers).some((name) => name.toLowerCase() === "transfer-encoding");
  res.writeHead(status, {
    ...(status === 204 || status === 304 ? {} : { "Content-Type": "application/json" }),
    ...(chunked ? {} : { "Content-Length": String(payload.byteLength) }),
    ...headers,
  });
  if (!chunked) {
    res.end(payload);
    return;
  }
  for (let at = 0; at < payload.byteLength; at += 65_536) res.write(payload.subarray(at, at + 65_536));
  res.end();
}

function link(href: string): { href: string; type: string } {
  return { href, type: "application/json" };
}

function existing(flags: ReadonlyMap<string, FakeLaunchDarklyFlag>, key: string | undefined): FakeLaunchDarklyFlag {
  const flag = key === undefined ? undefined : flags.get(key);
  if (flag === undefined) throw new ApiError(404, "not_found", "Unknown feature flag key");
  return flag;
}

function objectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError(400, "invalid_request", "The request body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

/** `env` and `filterEnv` of a request: the environments a flag's representation includes (null: all). */
function environmentsOf(query: URLSearchParams, filterEnv: readonly string[] | null): string[] | null {
  const named = [...query.getAll("env"), ...(filterEnv ?? [])];
  return named.length === 0 ? null : named;
}

/** The `filter` parameter: `field:value` pairs separated by commas. */
function parseFilter(text: string | null): Map<string, string> {
  const filters = new Map<string, string>();
  if (text === null || text.trim() === "") return filters;
  for (const part of text.split(",")) {
    const colon = part.indexOf(":");
    if (colon <= 0) throw new ApiError(400, "invalid_request", `Invalid filter "${part}"`);
    filters.set(part.slice(0, colon).trim(), part.slice(colon + 1).trim());
  }
  return filters;
}

function listFlags(
  flags: ReadonlyMap<string, FakeLaunchDarklyFlag>,
  projectKey: string,
  query: URLSearchParams,
): Record<string, unknown> {
  const filter = parseFilter(query.get("filter"));
  const search = filter.get("query")?.toLowerCase();
  const tags = filter.get("tags")?.split("+").filter(Boolean) ?? [];
  const filterEnv = filter.has("filterEnv") ? (filter.get("filterEnv") ?? "").split("+").filter(Boolean) : null;
  const matching = [...flags.values()].filter(
    (f) =>
      !f.archived &&
      (search === undefined || f.key.toLowerCase().includes(search) || f.name.toLowerCase().includes(search)) &&
      tags.every((t) => f.tags.includes(t)),
  );
  const limit = Math.min(100, Math.max(1, Number(query.get("limit") ?? 20) || 20));
  const offset = Math.max(0, Number(query.get("offset") ?? 0) || 0);
  // API version 20240415: environments only when the request is filtered by environment.
  const shown = filterEnv === null ? [] : environmentsOf(query, filterEnv);
  const items = matching
    .slice(offset, offset + limit)
    .map((f) => represent(f, projectKey, shown, query.get("summary")));
  const page = (at: number): { href: string; type: string } => {
    const params = new URLSearchParams(query);
    params.set("limit", String(limit));
    params.set("offset", String(at));
    return link(`/api/v2/flags/${projectKey}?${params.toString()}`);
  };
  const lastOffset = matching.length === 0 ? 0 : Math.floor((matching.length - 1) / limit) * limit;
  return {
    items,
    _links: {
      self: page(offset),
      first: page(0),
      ...(offset > 0 ? { prev: page(Math.max(0, offset - limit)) } : {}),
      ...(offset + limit < matching.length ? { next: page(offset + limit) } : {}),
      last: page(lastOffset),
    },
    totalCount: matching.length,
  };
}

/** The REST representation: `environments` limited to `shown` (null: all, [] none), summarised unless `summary` is 0/false. */
function represent(
  flag: FakeLaunchDarklyFlag,
  projectKey: string,
  shown: readonly string[] | null,
  summary: string | null,
): Record<string, unknown> {
  const summarised = summary !== "0" && summary !== "false";
  const environments: Record<string, unknown> = {};
  for (const [key, config] of Object.entries(flag.environments)) {
    if (shown !== null && !shown.includes(key)) continue;
    const copy: Record<string, unknown> = { ...structuredClone(config) };
    if (summarised) {
      delete copy.targets;
      delete copy.contextTargets;
      delete copy.rules;
      delete copy.prerequisites;
      copy._summary = { variations: {}, prerequisites: config.prerequisites.length };
    }
    environments[key] = copy;
  }
  return {
    name: flag.name,
    kind: flag.kind,
    description: flag.description,
    key: flag.key,
    _version: flag._version,
    creationDate: flag.creationDate,
    variations: structuredClone(flag.variations),
    temporary: flag.temporary,
    tags: [...flag.tags],
    _links: {
      parent: link(`/api/v2/flags/${projectKey}`),
      self: link(`/api/v2/flags/${projectKey}/${flag.key}`),
    },
    experiments: { baselineIdx: 0, items: [] },
    customProperties: {},
    archived: flag.archived,
    deprecated: flag.deprecated,
    ...(shown === null || shown.length > 0 ? { environments } : {}),
  };
}

function createFlag(body: unknown, projectKey: string, environments: readonly string[]): FakeLaunchDarklyFlag {
  const post = objectBody(body);
  if (typeof post.name !== "string" || post.name === "") throw new ApiError(400, "invalid_request", "name is required");
  if (typeof post.key !== "string" || !KEY.test(post.key)) {
    throw new ApiError(400, "invalid_request", "key must contain only letters, numbers, '.', '_' or '-'");
  }
  const given = post.variations === undefined ? [{ value: true }, { value: false }] : post.variations;
  if (!Array.isArray(given) || given.length < 1) {
    throw new ApiError(400, "invalid_request", "variations must be a non-empty array");
  }
  const variations: FakeLaunchDarklyVariation[] = given.map((v: unknown) => {
    const variation = objectBody(v);
    if (!("value" in variation)) throw new ApiError(400, "invalid_request", "each variation needs a value");
    return {
      _id: randomUUID(),
      value: variation.value,
      ...(typeof variation.name === "string" ? { name: variation.name } : {}),
      ...(typeof variation.description === "string" ? { description: variation.description } : {}),
    };
  });
  const values = variations.map((v) => JSON.stringify(v.value));
  if (new Set(values).size !== values.length) {
    throw new ApiError(400, "invalid_request", "variation values must be unique");
  }
  const defaults = post.defaults === undefined ? undefined : objectBody(post.defaults);
  const index = (value: unknown, fallback: number, field: string): number => {
    const i = value === undefined ? fallback : value;
    if (typeof i !== "number" || !Number.isInteger(i) || i < 0 || i >= variations.length) {
      throw new ApiError(400, "invalid_request", `defaults.${field} must index a variation`);
    }
    return i;
  };
  const onVariation = index(defaults?.onVariation, 0, "onVariation");
  const offVariation = index(defaults?.offVariation, variations.length - 1, "offVariation");
  const now = Date.now();
  const key = post.key;
  const isBoolean = variations.length === 2 && variations.every((v) => typeof v.value === "boolean");
  return {
    name: post.name,
    kind: isBoolean ? "boolean" : "multivariate",
    description: typeof post.description === "string" ? post.description : "",
    key,
    _version: 1,
    creationDate: now,
    variations,
    temporary: typeof post.temporary === "boolean" ? post.temporary : true,
    tags: Array.isArray(post.tags) ? post.tags.map(String) : [],
    archived: false,
    deprecated: false,
    environments: Object.fromEntries(
      environments.map((env) => [
        env,
        {
          on: false,
          archived: false,
          // Derived from the key and environment (LaunchDarkly's is random): the same bucketing every run.
          salt: createHash("sha256").update(`${key}/${env}`).digest("hex").slice(0, 32),
          sel: randomBytes(16).toString("hex"),
          lastModified: now,
          version: 1,
          targets: [],
          contextTargets: [],
          rules: [],
          fallthrough: { variation: onVariation },
          offVariation,
          prerequisites: [],
          _site: { href: `/${projectKey}/${env}/features/${key}`, type: "text/html" },
          _environmentName: env,
          trackEvents: false,
          trackEventsFallthrough: false,
        } satisfies FakeLaunchDarklyEnvironmentConfig,
      ]),
    ),
  };
}

function instructionList(value: unknown): Record<string, unknown>[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new ApiError(400, "invalid_request", "instructions must be a non-empty array");
  }
  return value.map((i) => objectBody(i));
}

function semanticPatch(body: unknown): { environmentKey?: string; instructions: Record<string, unknown>[] } {
  const patch = objectBody(body);
  const instructions = instructionList(patch.instructions);
  if (patch.environmentKey !== undefined && typeof patch.environmentKey !== "string") {
    throw new ApiError(400, "invalid_request", "environmentKey must be a string");
  }
  return {
    ...(typeof patch.environmentKey === "string" ? { environmentKey: patch.environmentKey } : {}),
    instructions,
  };
}

/** The flag after the instructions (a copy): all apply or none (400 naming the first that cannot). */
function applyInstructions(
  flag: FakeLaunchDarklyFlag,
  environment: string | undefined,
  instructions: readonly Record<string, unknown>[],
): FakeLaunchDarklyFlag {
  const next = structuredClone(flag);
  const variationIndex = (id: unknown, kind: string): number => {
    const i = next.variations.findIndex((v) => v._id === id);
    if (i < 0) throw new ApiError(400, "invalid_request", `${kind}: unknown variation ID ${JSON.stringify(id)}`);
    return i;
  };
  for (const instruction of instructions) {
    const kind = String(instruction.kind);
    let config: FakeLaunchDarklyEnvironmentConfig | undefined;
    if (ENVIRONMENT_INSTRUCTIONS.has(kind)) {
      config = environment === undefined ? undefined : next.environments[environment];
      if (config === undefined) throw new ApiError(400, "invalid_request", `${kind} requires an environmentKey`);
    }
    switch (kind) {
      case "turnFlagOn":
        config!.on = true;
        break;
      case "turnFlagOff":
        config!.on = false;
        break;
      case "updateOffVariation":
        config!.offVariation = variationIndex(instruction.variationId, kind);
        break;
      case "updateFallthroughVariationOrRollout": {
        if (instruction.variationId !== undefined) {
          config!.fallthrough = { variation: variationIndex(instruction.variationId, kind) };
          break;
        }
        const weights = instruction.rolloutWeights;
        if (typeof weights !== "object" || weights === null || Array.isArray(weights)) {
          throw new ApiError(400, "invalid_request", `${kind}: either variationId or rolloutWeights is required`);
        }
        const entries = Object.entries(weights as Record<string, unknown>).map(([id, weight]) => {
          if (typeof weight !== "number" || !Number.isInteger(weight) || weight < 0 || weight > 100_000) {
            throw new ApiError(400, "invalid_request", `${kind}: weights are integers from 0 to 100000`);
          }
          return { variation: variationIndex(id, kind), weight };
        });
        if (entries.reduce((sum, e) => sum + e.weight, 0) !== 100_000) {
          throw new ApiError(400, "invalid_request", `${kind}: rollout weights must sum to 100000`);
        }
        entries.sort((a, b) => a.variation - b.variation);
        config!.fallthrough = {
          rollout: {
            variations: entries,
            ...(typeof instruction.rolloutBucketBy === "string" ? { bucketBy: instruction.rolloutBucketBy } : {}),
            contextKind: typeof instruction.rolloutContextKind === "string" ? instruction.rolloutContextKind : "user",
          },
        };
        break;
      }
      case "addVariation": {
        if (!("value" in instruction)) throw new ApiError(400, "invalid_request", "addVariation: value is required");
        const value = JSON.stringify(instruction.value);
        if (next.variations.some((v) => JSON.stringify(v.value) === value)) {
          throw new ApiError(400, "invalid_request", "addVariation: variation values must be unique");
        }
        next.variations.push({
          _id: randomUUID(),
          value: instruction.value,
          ...(typeof instruction.name === "string" ? { name: instruction.name } : {}),
          ...(typeof instruction.description === "string" ? { description: instruction.description } : {}),
        });
        break;
      }
      default:
        throw new ApiError(400, "invalid_request", `Unsupported instruction kind ${JSON.stringify(kind)}`);
    }
  }
  return next;
}

function approvalBody(approval: FakeLaunchDarklyApproval): Record<string, unknown> {
  const { flagKey: _flag, environmentKey: _environment, ...body } = approval;
  return structuredClone(body);
}

/** What `/sdk/latest-all` answers for an environment: every flag in the SDK's data model. */
function sdkPayload(flags: ReadonlyMap<string, FakeLaunchDarklyFlag>, environment: string): Answer {
  const data: Record<string, unknown> = {};
  for (const flag of flags.values()) {
    const config = flag.environments[environment];
    if (config === undefined) continue;
    data[flag.key] = {
      key: flag.key,
      version: flag._version,
      on: config.on,
      prerequisites: config.prerequisites,
      salt: config.salt,
      targets: config.targets,
      contextTargets: config.contextTargets,
      rules: config.rules,
      fallthrough: config.fallthrough,
      ...(config.offVariation === undefined ? {} : { offVariation: config.offVariation }),
      variations: flag.variations.map((v) => v.value),
      clientSideAvailability: { usingEnvironmentId: false, usingMobileKey: false },
      trackEvents: config.trackEvents,
      trackEventsFallthrough: config.trackEventsFallthrough,
      deleted: false,
    };
  }
  const body = { flags: data, segments: {} };
  const etag = `"${createHash("sha256").update(JSON.stringify(body)).digest("hex").slice(0, 32)}"`;
  return { status: 200, body, etag };
}
