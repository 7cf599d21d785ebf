/**
 * `posthog`: per-arm aggregates from PostHog's query API
 * (`POST /api/projects/:project_id/query/`, a `HogQLQuery`), with a
 * personal API key. See docs/connectors.md, "posthog".
 *
 * Two ways to say what to read:
 *
 * - the built query (no `query` setting): exposures are `exposure_event`
 *   (default `$feature_flag_called`) carrying the experiment key in
 *   `experiment_property` (default `$feature_flag`, the flag key) and the arm
 *   in `variant_property` (default `$feature_flag_response`, the variant), the
 *   outcome is `event` (a proportion: persons who fired it after their first
 *   exposure; a mean: the sum of `value_property` per person), aggregated per
 *   person and then per experiment and arm in HogQL (`hogql.ts`);
 * - `query`: the user's own HogQL, with placeholders `{experiments}` (or
 *   `{experiment}`), `{arms}`, `{from}`, `{to}` passed as the request's
 *   `values`, checked to be one read before it is sent.
 *
 * Batched: the built query and a user query with `{experiments}` read many
 * experiments in one request, grouped by experiment and arm; a batch larger
 * than {@link POSTHOG_MAX_ROWS} (experiment, arm) pairs is split. Every read
 * spends its requests of the project's budget first (`request-budget.ts`).
 */
import { guardedFetch } from "@outcome-runtime/netguard";
import { assertWindow, parseNumber } from "../boundary-checks";
import { ConfigReader, show } from "../config-reader";
import type {
  ArmAggregate,
  BatchAggregates,
  BatchWindow,
  ConnectorConfig,
  ConnectorContext,
  ExperimentWindow,
  SeriesPoint,
  SignalConnector,
} from "../connector";
import { ConnectorError } from "../connector-error";
import { credentialFields, credentialValue, readCredentialRef } from "../credentials";
import { type PollCost, requestBudget } from "../request-budget";
import { aggregatesOfRows, batchFrom, batchOfOne, type SqlRows, splitBatch } from "../sql/result-rows";
import { normalizeApiUrl, vendorApiUrl } from "../vendor-hosts";
import { builtQuery, type CheckedHogQL, checkUserQuery } from "./hogql";
import {
  type HogQLRows,
  POSTHOG_LEGACY_QUERIES_PER_HOUR,
  POSTHOG_REGION_URLS,
  posthogBudgetLimits,
  type QueryApiSettings,
  runHogQL,
} from "./query-api-client";

const FIELDS = [
  "project_id",
  ...credentialFields("posthog"),
  "region",
  "api_url",
  "query",
  "event",
  "exposure_event",
  "experiment_property",
  "variant_property",
  "value_property",
  "timeout",
] as const;

/** PostHog's own experiment exposure: `$feature_flag_called` with the flag key and the variant it returned. */
const POSTHOG_DEFAULTS = Object.freeze({
  exposure_event: "$feature_flag_called",
  experiment_property: "$feature_flag",
  variant_property: "$feature_flag_response",
  region: "us" as const,
  timeoutSeconds: 30,
});

/**
 * The most (experiment, arm) rows one request asks for: the built query's
 * `LIMIT`. A batch with more pairs is split into several requests.
 */
export const POSTHOG_MAX_ROWS = 10_000;

type Read = { kind: "built"; text: string } | { kind: "user"; checked: CheckedHogQL };

interface PosthogSettings {
  readonly api: QueryApiSettings;
  readonly read: Read;
  /** The built query's `event` and `value_property` (undefined for a user query, or a proportion's value). */
  readonly event: string | undefined;
  readonly valueProperty: string | undefined;
  readonly describeWhat: string;
  readonly metricKind: "proportion" | "mean";
}

/**
 * Creates a `posthog` connector. Reads the personal API key from the
 * credential the settings name (`personal_api_key_env` or `_secret`).
 *
 * @throws ConnectorError `invalid_config` naming the field, the value and the fix;
 *   `read_only_violation` for a `query` that is not one read; `source_refused`
 *   for an `api_url` PostHog does not own and the operator did not allow
 */
export function createPosthogConnector(config: ConnectorConfig, context: ConnectorContext): SignalConnector {
  if (context.metricKind === "ratio") {
    throw new ConnectorError(
      "invalid_config",
      "posthog connector: the metric is a ratio, whose delta-method variance needs each unit's numerator and denominator (den_sum, den_sum_sq, num_den_sum); the posthog connector reads proportions and means. Read a ratio from a warehouse connector, or make it a mean of the numerator per person",
      { details: { field: "type", value: "posthog", kind: "ratio" } },
    );
  }
  const reader = new ConfigReader(config, FIELDS);
  const projectId = readProjectId(reader);
  const keyRef = readCredentialRef(reader, "personal_api_key", "a PostHog personal API key with query:read");
  const apiKey = credentialValue(context.credentials, keyRef, "posthog");
  const region = reader.oneOf("region", ["us", "eu"] as const, POSTHOG_DEFAULTS.region);
  const apiUrl = reader.optionalString(
    "api_url",
    "write https://us.posthog.com, https://eu.posthog.com or your instance's URL",
  );
  const baseUrl =
    apiUrl === undefined
      ? POSTHOG_REGION_URLS[region]
      : vendorApiUrl(reader, "api_url", apiUrl, Object.values(POSTHOG_REGION_URLS), context.allowedApiUrls?.posthog);
  const timeoutSeconds = reader.durationSeconds("timeout", POSTHOG_DEFAULTS.timeoutSeconds);
  const timeoutMs = Math.min(timeoutSeconds * 1000, context.maxTimeoutMs ?? Number.POSITIVE_INFINITY);

  const query = reader.optionalString("query", "write a HogQL SELECT");
  let read: Read;
  let describeWhat: string;
  let builtEvent: string | undefined;
  let builtValueProperty: string | undefined;
  if (query !== undefined) {
    for (const field of ["event", "exposure_event", "experiment_property", "variant_property", "value_property"]) {
      if (reader.has(field)) {
        throw reader.invalid(
          field,
          "is set together with query",
          `the query says what to read: remove ${field}, or remove query`,
        );
      }
    }
    read = { kind: "user", checked: checkUserQuery(query) };
    describeWhat = `a HogQL query (${read.checked.form === "batched" ? "{experiments}" : "{experiment}"})`;
  } else {
    const event = reader.string("event", "name the PostHog event that counts as a success or carries the value");
    const valueProperty = reader.optionalString("value_property", "name the numeric event property to average");
    if (context.metricKind === "mean" && valueProperty === undefined) {
      throw reader.invalid(
        "value_property",
        "is missing, but the metric is a mean",
        "name the numeric property of the event that holds each value (e.g. amount), or write a query",
      );
    }
    if (context.metricKind === "proportion" && valueProperty !== undefined) {
      throw reader.invalid(
        "value_property",
        "is set, but the metric is a proportion (did this person fire the event?)",
        "remove value_property, or make the metric kind mean",
      );
    }
    const built = {
      event,
      valueProperty,
      exposureEvent:
        reader.optionalString("exposure_event", "name the exposure event") ?? POSTHOG_DEFAULTS.exposure_event,
      experimentProperty:
        reader.optionalString("experiment_property", "name the property holding the experiment key") ??
        POSTHOG_DEFAULTS.experiment_property,
      variantProperty:
        reader.optionalString("variant_property", "name the property holding the arm") ??
        POSTHOG_DEFAULTS.variant_property,
    };
    read = { kind: "built", text: builtQuery(built, POSTHOG_MAX_ROWS) };
    builtEvent = event;
    builtValueProperty = valueProperty;
    describeWhat = `${valueProperty === undefined ? "persons who fired" : `Σ ${JSON.stringify(valueProperty)} per person of`} ${JSON.stringify(event)}, units = persons with ${JSON.stringify(built.exposureEvent)} by ${JSON.stringify(built.variantProperty)}`;
  }

  const settings: PosthogSettings = {
    api: {
      baseUrl,
      projectId,
      apiKey,
      timeoutMs,
      // The default transport is held to the outbound policy (OUTBOUND_ALLOW), and to the origin of the API
      // base: a redirect elsewhere is refused rather than followed, so the key stays with PostHog.
      fetch: context.fetch ?? guardedFetch({ policy: context.outboundPolicy, origins: [new URL(baseUrl).origin] }),
      budget: requestBudget(posthogBudgetLimits(baseUrl, projectId)),
    },
    read,
    event: builtEvent,
    valueProperty: builtValueProperty,
    describeWhat,
    metricKind: context.metricKind,
  };
  return new PosthogConnector(settings);
}

function readProjectId(reader: ConfigReader): string {
  const value = reader.raw("project_id");
  if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) return String(value);
  if (typeof value === "string" && /^[0-9]+$/u.test(value.trim())) return value.trim();
  throw reader.invalid(
    "project_id",
    value === undefined ? "is missing" : `${show(value)} is not a project id`,
    "write the numeric project id shown in PostHog's project settings (the number in /project/<id>/)",
    value === undefined ? {} : { value },
  );
}

/** Whether `posthog` settings read many experiments in one request: the built query, or a `query` with `{experiments}`. */
export function posthogReadsInBatches(config: ConnectorConfig): boolean {
  if (typeof config.query !== "string") return true;
  try {
    return checkUserQuery(config.query).form === "batched";
  } catch {
    return false;
  }
}

/**
 * What one poll round costs a PostHog project's budget: one request per
 * {@link POSTHOG_MAX_ROWS} (experiment, arm) pairs when the settings read in
 * batches, one per experiment otherwise. Planned at
 * {@link POSTHOG_LEGACY_QUERIES_PER_HOUR} less a sixth an hour (100), within
 * the older limit some projects still have, leaving room for retries and for
 * people querying the same project. Null for settings that are not a posthog
 * connector's or name no project.
 */
export function posthogPollCost(config: ConnectorConfig): PollCost | null {
  if (config.type !== "posthog") return null;
  const project = config.project_id;
  const projectId =
    typeof project === "number" && Number.isSafeInteger(project) && project > 0
      ? String(project)
      : typeof project === "string" && /^[0-9]+$/u.test(project.trim())
        ? project.trim()
        : undefined;
  if (projectId === undefined) return null;
  const region = config.region === "eu" ? "eu" : "us";
  // The key the connector's budget has: its API base in the form URLs are compared in.
  const baseUrl =
    typeof config.api_url === "string"
      ? (normalizeApiUrl(config.api_url) ?? config.api_url)
      : POSTHOG_REGION_URLS[region];
  const batched = posthogReadsInBatches(config);
  return {
    limits: posthogBudgetLimits(baseUrl, projectId),
    plannedPerHour: POSTHOG_LEGACY_QUERIES_PER_HOUR - POSTHOG_LEGACY_QUERIES_PER_HOUR / 6,
    requestsPerRound(experiments: number, arms: number): number {
      if (experiments <= 0) return 1;
      if (!batched) return experiments;
      return Math.max(1, Math.ceil((experiments * Math.max(1, arms)) / POSTHOG_MAX_ROWS));
    },
  };
}

class PosthogConnector implements SignalConnector {
  readonly type = "posthog";

  constructor(private readonly settings: PosthogSettings) {}

  describe(): string {
    const s = this.settings;
    const host = new URL(s.api.baseUrl).host;
    return `posthog project ${s.api.projectId} (${host}): ${s.describeWhat}`;
  }

  async fetchArmAggregates(window: ExperimentWindow, signal?: AbortSignal): Promise<ArmAggregate[]> {
    assertWindow(window);
    const s = this.settings;
    if (s.read.kind === "user" && s.read.checked.form === "single") {
      s.api.budget.spend(1);
      const rows = await this.run(
        { experiment: window.experimentKey, arms: window.arms, from: window.from, to: window.to },
        signal,
      );
      const result = sqlRows(rows);
      return aggregatesOfRows(result, result.rows, window, s.metricKind, "posthog query");
    }
    const answer = await this.batchRead(batchOfOne(window), signal);
    const mine = answer.get(window.experimentKey) ?? [];
    if (mine instanceof ConnectorError) throw mine;
    return mine;
  }

  /** Present when the settings read in batches: the built query, or a `query` with `{experiments}`. */
  get fetchBatchAggregates(): SignalConnector["fetchBatchAggregates"] {
    const s = this.settings;
    return s.read.kind === "built" || s.read.checked.form === "batched"
      ? (window, signal) => this.batchRead(window, signal)
      : undefined;
  }

  /**
   * The experiments of `window` in requests of at most
   * {@link POSTHOG_MAX_ROWS} (experiment, arm) pairs, all spent from the
   * project's budget first; each answer split by its `experiment` column and
   * checked per experiment.
   *
   * @throws ConnectorError when a request fails (nothing of the batch is used), or `rate_limited` before sending
   */
  private async batchRead(window: BatchWindow, signal: AbortSignal | undefined): Promise<BatchAggregates> {
    for (const e of window.experiments) assertWindow({ from: e.from, to: window.to, arms: e.arms });
    if (window.experiments.length === 0) return new Map();
    const groups = splitByRows(window);
    this.settings.api.budget.spend(groups.length);
    const from = batchFrom(window);
    const answers = await Promise.all(
      groups.map(async (group) => {
        const arms = [...new Set(group.experiments.flatMap((e) => e.arms))];
        const rows = await this.run(
          { experiments: group.experiments.map((e) => e.experimentKey), arms, from, to: window.to },
          signal,
        );
        this.checkValued(rows);
        return splitBatch(sqlRows(rows), group, from, this.settings.metricKind, "posthog query");
      }),
    );
    const out: BatchAggregates = new Map();
    for (const answer of answers) for (const [key, value] of answer) out.set(key, value);
    return out;
  }

  /**
   * The built mean's check that `value_property` is there: events of `event`
   * after exposure, none of which carries a number in it, mean the property is
   * mistyped or not numeric (HogQL reads a missing property as null, and the
   * sums would be 0).
   *
   * @throws ConnectorError `query_failed` naming `value_property`
   */
  private checkValued(rows: HogQLRows): void {
    const s = this.settings;
    if (s.read.kind !== "built" || s.valueProperty === undefined) return;
    const events = rows.columns.indexOf("outcome_events");
    const valued = rows.columns.indexOf("valued_events");
    if (events === -1 || valued === -1) return;
    const total = (i: number): number => rows.rows.reduce((n, row) => n + (parseNumber(row[i]) ?? 0), 0);
    const fired = total(events);
    if (fired > 0 && total(valued) === 0) {
      throw new ConnectorError(
        "query_failed",
        `posthog query: value_property ${JSON.stringify(s.valueProperty)}: none of the ${fired} ${JSON.stringify(s.event)} events after exposure carries a number in it (PostHog reads a property an event lacks as null); check the property's name, and that it holds numbers`,
        { details: { field: "value_property", value: s.valueProperty, events: fired } },
      );
    }
  }

  private run(
    values: { experiment?: string; experiments?: readonly string[]; arms: readonly string[]; from: Date; to: Date },
    signal: AbortSignal | undefined,
  ) {
    const s = this.settings;
    const text = s.read.kind === "built" ? s.read.text : s.read.checked.text;
    // Only the placeholders the text uses: HogQL refuses nothing extra, but the request stays what it reads.
    const used = s.read.kind === "built" ? new Set(["experiments", "arms", "to"]) : s.read.checked.placeholders;
    const all: Record<string, unknown> = {
      experiment: values.experiment,
      experiments: values.experiments,
      arms: values.arms,
      from: values.from.toISOString(),
      to: values.to.toISOString(),
    };
    const sent = Object.fromEntries(Object.entries(all).filter(([name]) => used.has(name)));
    return runHogQL(s.api, text, sent, signal, s.read.kind === "user" ? "query" : undefined);
  }

  async fetchOutcomeSeries(): Promise<SeriesPoint[]> {
    throw new ConnectorError(
      "unsupported",
      "posthog connector: reads per-arm aggregates of experiments, not an outcome's own series; read the series with a warehouse connector's series_query",
      { details: { field: "type" } },
    );
  }

  async close(): Promise<void> {}
}

/** A HogQL answer in the shape the SQL sources' row checks read. */
function sqlRows(rows: { columns: readonly string[]; rows: readonly (readonly unknown[])[] }): SqlRows {
  return { fields: rows.columns, rows: rows.rows };
}

/**
 * Splits a batch into groups whose answer has at most {@link POSTHOG_MAX_ROWS}
 * rows: experiments × the arms any of them has (`{arms}` is the union, so an
 * experiment may answer for another's arm), in order.
 */
function splitByRows(window: BatchWindow): BatchWindow[] {
  const groups: BatchWindow[] = [];
  let current: BatchWindow["experiments"][number][] = [];
  let arms = new Set<string>();
  for (const e of window.experiments) {
    const union = new Set([...arms, ...e.arms]);
    if (current.length > 0 && (current.length + 1) * Math.max(1, union.size) > POSTHOG_MAX_ROWS) {
      groups.push({ experiments: current, to: window.to });
      current = [];
      arms = new Set();
    }
    current.push(e);
    for (const arm of e.arms) arms.add(arm);
  }
  if (current.length > 0) groups.push({ experiments: current, to: window.to });
  return groups;
}
