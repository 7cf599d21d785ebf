/**
 * `mixpanel`: per-arm aggregates from Mixpanel's Query API segmentation
 * endpoints (documented, ad hoc: no saved report needed; JQL is deprecated
 * and not used).
 *
 * - units per arm: unique users who fired `exposure_event` with
 *   `experiment_property == key`, broken down (`on`) by `variant_property`
 *   (`GET /segmentation?type=unique&interval=<days of the window>`, so the
 *   window is one bucket and a user counts once);
 * - proportion: conversions per arm, the same unique count for `event`
 *   (which must carry the experiment and variant properties, e.g. as super
 *   properties registered at exposure);
 * - mean: Σ value per arm from `GET /segmentation/sum` of `value_property`,
 *   and Σ value² from the same endpoint summing `value * value`; one pair
 *   of requests per arm, as that endpoint has no breakdown. Mixpanel sums
 *   per event, so `sum_sq` is Σ over events, which equals Σ over users of
 *   their value squared only when each user fires `event` at most once.
 *
 * Batches (proportion only, `fetchBatchAggregates`): the same two
 * `/segmentation` requests for many experiments at once, segmented `on` the
 * concatenation `properties[experiment] + " | " + properties[variant]` (the
 * expression grammar's `+` joins two strings, Mixpanel docs
 * `reference/segmentation-expressions.mdx`, "Binary Operations") and filtered
 * with `where` to the batch's experiment keys and each one's arms; `limit` is
 * the number of (experiment, arm) pairs asked, at most 10,000 (the `limit`
 * parameter of `GET /segmentation` in `openapi/query.openapi.yaml` of
 * github.com/mixpanel/docs). `on` takes one expression, hence the
 * concatenation; a batch is split into requests of at most
 * {@link MIXPANEL_BATCH_MAX_KEYS} keys and a `where` of at most
 * {@link MIXPANEL_BATCH_MAX_WHERE_CHARS} characters, and by the window's first
 * day (unique counts depend on the date range). A mean is not batched:
 * `/segmentation/sum` has no `on` breakdown, so its Σ and Σ² still take two
 * requests per experiment and arm.
 *
 * Saved funnel (`funnel_id`, proportion only): `GET /funnels` of a funnel
 * saved in the Mixpanel UI whose first step is `exposure_event` and last
 * `event` (the documented API runs saved funnels only, never an ad-hoc list
 * of steps): units are the users who entered it, conversions those who
 * completed its last step within its conversion window, per segment of the
 * same `on` (the variant, or "<experiment> | <arm>" in a batch) and `where`;
 * one request per experiment or per batched request group. The step names of
 * the answer are checked against the settings on every read. Saved Insights
 * reports (`bookmark_id`) take no dates, breakdown or filter: not used.
 *
 * Outcome series: one point per completed day of the project's `timezone`,
 * dated at the day's end there: a proportion's daily unique converters over
 * the daily unique users of `series_denominator_event` (two `/segmentation`
 * requests), a mean's daily `/segmentation/average`.
 *
 * Every read spends its requests of the project's hourly budget up front
 * (`spendQueries`): a batch of 100 experiments costs 2 requests, not 200
 * (1 with a saved funnel). {@link mixpanelPollCost} gives a round's cost.
 */
import { guardedFetch } from "@outcome-runtime/netguard";
import { assertWindow, checkArmAggregates, checkSeries, parseNumber, type RawArmRow } from "../boundary-checks";
import { ConfigReader, show } from "../config-reader";
import type {
  ArmAggregate,
  BatchAggregates,
  BatchWindow,
  ConnectorConfig,
  ConnectorContext,
  ExperimentWindow,
  SeriesPoint,
  SeriesWindow,
  SignalConnector,
} from "../connector";
import { ConnectorError } from "../connector-error";
import { credentialFields, credentialValue, readCredentialRef } from "../credentials";
import { isRecord, linked } from "../http-response";
import type { PollCost } from "../request-budget";
import { normalizeApiUrl, vendorApiUrl } from "../vendor-hosts";
import { dayIn, daysFrom, endOfDay, isTimeZone, previousDay } from "./project-days";
import {
  MIXPANEL_MAX_CONCURRENT,
  MIXPANEL_QUERIES_PER_HOUR,
  MIXPANEL_REGION_URLS,
  type QueryApiSettings,
  queryApiGet,
  spendQueries,
} from "./query-api-client";

const FIELDS = [
  "project_id",
  "workspace_id",
  ...credentialFields("mixpanel"),
  "event",
  "exposure_event",
  "variant_property",
  "experiment_property",
  "value_property",
  "filter",
  "funnel_id",
  "series_denominator_event",
  "timezone",
  "region",
  "api_url",
  "timeout",
] as const;

const MIXPANEL_DEFAULTS = Object.freeze({
  exposure_event: "$experiment_started",
  variant_property: "Variant name",
  experiment_property: "Experiment name",
  region: "us" as const,
  timezone: "UTC",
  timeoutSeconds: 60,
});

/**
 * Experiment keys per batched request. With keys of a few dozen characters the
 * `where` stays a few kilobytes, well inside the 8 KiB request line common
 * servers and proxies accept.
 */
export const MIXPANEL_BATCH_MAX_KEYS = 100;

/**
 * The longest `where` expression of a batched request, in characters before
 * URL encoding; a batch of long keys is split before it gets there.
 */
export const MIXPANEL_BATCH_MAX_WHERE_CHARS = 4000;

/** The largest `limit` `GET /segmentation` accepts (openapi/query.openapi.yaml: "Maximum value 10,000"). */
const MIXPANEL_MAX_SEGMENTS = 10_000;

/** Joins experiment key and arm in a batched request's segment names. */
const SEGMENT_SEPARATOR = " | ";

interface MixpanelSettings {
  api: QueryApiSettings;
  event: string;
  exposureEvent: string;
  variantProperty: string;
  experimentProperty: string;
  valueProperty: string | undefined;
  filter: string | undefined;
  /** A saved funnel whose first step is `exposureEvent` and last `event`: read through `GET /funnels`. */
  funnelId: number | undefined;
  /** The event whose daily unique users divide a proportion's daily converters in the outcome series. */
  seriesDenominatorEvent: string;
  /** The project's time zone (IANA), in which Mixpanel dates events. */
  timezone: string;
  region: string;
  metricKind: "proportion" | "mean";
}

/**
 * Creates a `mixpanel` connector. Reads the service account from the
 * environment variables the settings name.
 *
 * @throws ConnectorError `invalid_config`
 */
export function createMixpanelConnector(config: ConnectorConfig, context: ConnectorContext): SignalConnector {
  if (context.metricKind === "ratio") {
    // Segmentation gives per-arm counts and sums, never the per-unit products a ratio's variance needs.
    throw new ConnectorError(
      "invalid_config",
      "mixpanel connector: the metric is a ratio, whose delta-method variance needs each unit's numerator and denominator (den_sum, den_sum_sq, num_den_sum), which Mixpanel's segmentation API does not give; read it with a postgres or csv connector, or make it a mean of the numerator per unit",
      { details: { field: "type", value: "mixpanel", kind: "ratio" } },
    );
  }
  const reader = new ConfigReader(config, FIELDS);
  const projectId = readProjectId(reader);
  const workspaceRaw = reader.raw("workspace_id");
  if (
    workspaceRaw !== undefined &&
    (typeof workspaceRaw !== "number" || !Number.isSafeInteger(workspaceRaw) || workspaceRaw < 1)
  ) {
    throw reader.invalid(
      "workspace_id",
      `${show(workspaceRaw)} is not a workspace id`,
      "write the data view's id, a whole number",
      {
        value: workspaceRaw,
      },
    );
  }
  const usernameRef = readCredentialRef(reader, "username", "the service account's username");
  const secretRef = readCredentialRef(reader, "secret", "the service account's secret");
  const username = credentialValue(context.credentials, usernameRef, "mixpanel");
  const secret = credentialValue(context.credentials, secretRef, "mixpanel");
  const event = reader.string("event", "name the Mixpanel event that counts as a success or carries the value");
  const valueProperty = reader.optionalString("value_property", "name the numeric event property to average");
  if (context.metricKind === "mean" && valueProperty === undefined) {
    throw reader.invalid(
      "value_property",
      "is missing, but the metric is a mean",
      "name the numeric property of the event that holds each value (e.g. amount)",
    );
  }
  const funnelId = readFunnelId(reader);
  if (funnelId !== undefined && (context.metricKind === "mean" || valueProperty !== undefined)) {
    throw reader.invalid(
      "funnel_id",
      "is set, but a funnel gives counts of users per step, not a mean of value_property",
      "use funnel_id for a proportion only (units: users who entered the funnel's first step, conversions: users who completed its last), or remove it and read the mean from value_property",
      { value: funnelId },
    );
  }
  const timezone =
    reader.optionalString("timezone", "write the project's time zone, e.g. Europe/Paris") ?? MIXPANEL_DEFAULTS.timezone;
  if (!isTimeZone(timezone)) {
    throw reader.invalid(
      "timezone",
      `${show(timezone)} is not a time zone`,
      "write the IANA name of the time zone set in the Mixpanel project's settings (e.g. America/Los_Angeles, Europe/Paris, UTC)",
      { value: timezone },
    );
  }
  const exposureEvent =
    reader.optionalString("exposure_event", "name the exposure event") ?? MIXPANEL_DEFAULTS.exposure_event;
  const region = reader.oneOf("region", ["us", "eu", "in"] as const, MIXPANEL_DEFAULTS.region);
  const apiUrl = reader.optionalString("api_url", "write a URL such as https://eu.mixpanel.com/api/query");
  const baseUrl =
    apiUrl === undefined
      ? MIXPANEL_REGION_URLS[region]
      : vendorApiUrl(reader, "api_url", apiUrl, Object.values(MIXPANEL_REGION_URLS), context.allowedApiUrls?.mixpanel);
  const settings: MixpanelSettings = {
    api: {
      baseUrl,
      projectId,
      workspaceId: workspaceRaw as number | undefined,
      username,
      secret,
      timeoutMs: reader.durationSeconds("timeout", MIXPANEL_DEFAULTS.timeoutSeconds) * 1000,
      // The default transport is held to the outbound policy (OUTBOUND_ALLOW), and to the origin of the API
      // base: a redirect elsewhere is refused rather than followed, so the credentials stay with the vendor.
      fetch: context.fetch ?? guardedFetch({ policy: context.outboundPolicy, origins: [new URL(baseUrl).origin] }),
    },
    event,
    exposureEvent,
    variantProperty:
      reader.optionalString("variant_property", "name the property holding the arm") ??
      MIXPANEL_DEFAULTS.variant_property,
    experimentProperty:
      reader.optionalString("experiment_property", "name the property holding the experiment key") ??
      MIXPANEL_DEFAULTS.experiment_property,
    valueProperty,
    filter: reader.optionalString("filter", 'write a Mixpanel expression, e.g. properties["platform"] == "web"'),
    funnelId,
    seriesDenominatorEvent:
      reader.optionalString("series_denominator_event", "name the event whose daily users divide the series") ??
      exposureEvent,
    timezone,
    region,
    // Not a ratio: refused above.
    metricKind: context.metricKind,
  };
  return new MixpanelConnector(settings);
}

/** `funnel_id`: the id of a saved funnel, a whole number ≥ 1 (or its digits). */
function readFunnelId(reader: ConfigReader): number | undefined {
  const value = reader.raw("funnel_id");
  if (value === undefined) return undefined;
  const id = typeof value === "string" && /^[0-9]+$/u.test(value.trim()) ? Number(value.trim()) : value;
  if (typeof id === "number" && Number.isSafeInteger(id) && id > 0) return id;
  throw reader.invalid(
    "funnel_id",
    `${show(value)} is not a funnel id`,
    "write the number of a funnel saved in the project (GET /funnels/list lists them; it is also in the funnel report's URL)",
    { value },
  );
}

function readProjectId(reader: ConfigReader): string {
  const value = reader.raw("project_id");
  if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) return String(value);
  if (typeof value === "string" && /^[0-9]+$/u.test(value.trim())) return value.trim();
  throw reader.invalid(
    "project_id",
    value === undefined ? "is missing" : `${show(value)} is not a project id`,
    "write the numeric project id shown in the Mixpanel project settings",
    value === undefined ? {} : { value },
  );
}

/**
 * Requests one experiment poll costs: units, then conversions (proportion) or
 * Σ and Σ² per arm (mean); one `/funnels` request when the proportion reads a
 * saved funnel (`funnel_id`), which gives both counts.
 */
export function mixpanelRequestsPerPoll(hasValueProperty: boolean, arms: number, readsFunnel = false): number {
  if (readsFunnel && !hasValueProperty) return MIXPANEL_REQUESTS_PER_FUNNEL_READ;
  return hasValueProperty ? 1 + 2 * arms : 2;
}

/**
 * Whether `mixpanel` settings read experiments in batches: a proportion (no
 * `value_property`), from segmentation or from a saved funnel. A mean's Σ comes
 * from `/segmentation/sum`, which has no breakdown.
 */
export function mixpanelReadsInBatches(config: ConnectorConfig): boolean {
  return !(typeof config.value_property === "string" && config.value_property !== "");
}

/** Requests one batched request group costs (proportion from segmentation): units and conversions. */
export const MIXPANEL_REQUESTS_PER_BATCH = 2;

/** Requests one funnel read costs, of one experiment or of a batched request group: `GET /funnels` gives every step. */
const MIXPANEL_REQUESTS_PER_FUNNEL_READ = 1;

/**
 * Requests an hour planned for polling one project, out of Mixpanel's
 * {@link MIXPANEL_QUERIES_PER_HOUR}: the rest is left for retries after
 * errors, outcome series and people querying the same project.
 */
export const MIXPANEL_PLANNED_QUERIES_PER_HOUR = 50;

/** Mixpanel's page documenting the Query API's limits (60 queries an hour, 5 at once, per project). */
const MIXPANEL_RATE_LIMITS_DOCS = "https://docs.mixpanel.com/reference/rate-limits";

/**
 * What one poll round of `mixpanel` settings costs the project's Query API
 * budget ({@link MIXPANEL_QUERIES_PER_HOUR} requests an hour and
 * {@link MIXPANEL_MAX_CONCURRENT} at once per project,
 * https://docs.mixpanel.com/reference/rate-limits), or null for settings of
 * another type. The budget's key is the API base and project id, as the
 * connector counts it (`spendQueries`).
 *
 * A round of `experiments` experiments with `arms` arms costs:
 * - a proportion (read in batches of {@link MIXPANEL_BATCH_MAX_KEYS}):
 *   2 requests per batch from segmentation, 1 from a saved funnel (`funnel_id`);
 * - a mean (one experiment at a time): 1 + 2 × arms requests per experiment.
 *
 * @example
 * mixpanelPollCost({ type: "mixpanel", project_id: 1, event: "paid" })?.requestsPerRound(250, 2); // 2 × ⌈250 / 100⌉ = 6
 */
export function mixpanelPollCost(config: ConnectorConfig): PollCost | null {
  if (config.type !== "mixpanel") return null;
  const projectId = typeof config.project_id === "string" ? config.project_id.trim() : String(config.project_id);
  const region = typeof config.region === "string" && config.region in MIXPANEL_REGION_URLS ? config.region : "us";
  const baseUrl =
    typeof config.api_url === "string" && config.api_url !== ""
      ? (normalizeApiUrl(config.api_url) ?? config.api_url)
      : MIXPANEL_REGION_URLS[region as keyof typeof MIXPANEL_REGION_URLS];
  const hasValue = !mixpanelReadsInBatches(config);
  const readsFunnel = config.funnel_id !== undefined && config.funnel_id !== null && config.funnel_id !== "";
  const perBatch = readsFunnel ? MIXPANEL_REQUESTS_PER_FUNNEL_READ : MIXPANEL_REQUESTS_PER_BATCH;
  return {
    limits: {
      vendor: "mixpanel",
      scope: `project ${projectId}`,
      key: `${baseUrl}#${projectId}`,
      perHour: MIXPANEL_QUERIES_PER_HOUR,
      maxConcurrent: MIXPANEL_MAX_CONCURRENT,
      docs: MIXPANEL_RATE_LIMITS_DOCS,
    },
    plannedPerHour: MIXPANEL_PLANNED_QUERIES_PER_HOUR,
    requestsPerRound(experiments: number, arms: number): number {
      const count = Math.max(1, Math.ceil(experiments));
      if (!hasValue) return perBatch * Math.ceil(count / MIXPANEL_BATCH_MAX_KEYS);
      return count * mixpanelRequestsPerPoll(true, Math.max(1, Math.ceil(arms)));
    },
  };
}

class MixpanelConnector implements SignalConnector {
  readonly type = "mixpanel";

  constructor(private readonly settings: MixpanelSettings) {}

  describe(): string {
    const s = this.settings;
    if (s.funnelId !== undefined) {
      return `mixpanel project ${s.api.projectId} (${s.api.baseUrl === MIXPANEL_REGION_URLS[s.region as "us"] ? s.region : new URL(s.api.baseUrl).host}): funnel ${s.funnelId}, units = users who entered its first step (${JSON.stringify(s.exposureEvent)}), conversions = users who completed its last (${JSON.stringify(s.event)}), by ${JSON.stringify(s.variantProperty)}`;
    }
    const what =
      s.valueProperty === undefined
        ? `unique users of ${JSON.stringify(s.event)}`
        : `${JSON.stringify(s.valueProperty)} of ${JSON.stringify(s.event)}`;
    return `mixpanel project ${s.api.projectId} (${s.api.baseUrl === MIXPANEL_REGION_URLS[s.region as "us"] ? s.region : new URL(s.api.baseUrl).host}): ${what}, units = unique users of ${JSON.stringify(s.exposureEvent)} by ${JSON.stringify(s.variantProperty)}`;
  }

  async fetchArmAggregates(window: ExperimentWindow, signal?: AbortSignal): Promise<ArmAggregate[]> {
    assertWindow(window);
    spendQueries(
      this.settings.api,
      mixpanelRequestsPerPoll(
        this.settings.valueProperty !== undefined,
        window.arms.length,
        this.settings.funnelId !== undefined,
      ),
    );
    return linked(signal, (poll) => this.poll(window, poll));
  }

  /**
   * Present for a proportion (no `value_property`): see {@link batchRead}.
   * A mean reads one experiment at a time, as `/segmentation/sum` has no breakdown.
   */
  get fetchBatchAggregates(): SignalConnector["fetchBatchAggregates"] {
    return this.settings.valueProperty === undefined ? (window, signal) => this.batchRead(window, signal) : undefined;
  }

  /**
   * The experiments of `window` in {@link planBatch}'s request groups, each two
   * `/segmentation` requests (unique exposed users, unique converters) segmented
   * on "<experiment> | <arm>". The whole batch's requests are spent from the
   * hourly budget first. Each experiment's rows are checked as
   * `fetchArmAggregates` checks them; an error there is that experiment's value.
   *
   * @throws ConnectorError when a request fails (the others are cancelled), when
   *   the budget cannot pay for the batch (`rate_limited`, nothing sent), or
   *   `bad_response` when a segment names no experiment its request asked for.
   */
  private async batchRead(window: BatchWindow, signal: AbortSignal | undefined): Promise<BatchAggregates> {
    for (const e of window.experiments) assertWindow({ from: e.from, to: window.to, arms: e.arms });
    if (window.experiments.length === 0) return new Map();
    const s = this.settings;
    const groups = planBatch(window, s);
    const funnelId = s.funnelId;
    spendQueries(
      s.api,
      (funnelId === undefined ? MIXPANEL_REQUESTS_PER_BATCH : MIXPANEL_REQUESTS_PER_FUNNEL_READ) * groups.length,
    );
    const answered = await linked(signal, (poll) =>
      Promise.all(
        groups.map(async (group) => {
          const limit = Math.min(MIXPANEL_MAX_SEGMENTS, group.pairs.size);
          const eventWhere = s.filter === undefined ? group.where : `(${group.where}) and (${s.filter})`;
          if (funnelId !== undefined) {
            return { group, ...(await this.funnelBy(funnelId, group.on, eventWhere, group.range, limit, poll)) };
          }
          const [units, conversions] = await Promise.all([
            this.uniqueBy(s.exposureEvent, group.on, group.where, group.range, limit, poll),
            this.uniqueBy(s.event, group.on, eventWhere, group.range, limit, poll),
          ]);
          return { group, units, conversions };
        }),
      ),
    );
    const answer: BatchAggregates = new Map();
    for (const { group, units, conversions } of answered) {
      const rowsByKey = new Map<string, RawArmRow[]>(group.experiments.map((e) => [e.experimentKey, []]));
      const failed = new Map<string, ConnectorError>();
      const pairs = new Map<string, { key: string; arm: string; units: number; sum: number }>();
      for (const [segment, count, field] of [
        ...[...units].map(([k, v]) => [k, v, "units"] as const),
        ...[...conversions].map(([k, v]) => [k, v, "sum"] as const),
      ]) {
        // Attributed first: a segment naming no experiment of the request fails the whole batch.
        const pair = pairs.get(segment) ?? {
          ...attribute(segment, group, funnelId === undefined ? "/segmentation" : "/funnels"),
          units: 0,
          sum: 0,
        };
        if (count instanceof ConnectorError) {
          if (!failed.has(pair.key)) failed.set(pair.key, count);
          continue;
        }
        pair[field] = count;
        pairs.set(segment, pair);
      }
      for (const pair of pairs.values()) {
        rowsByKey.get(pair.key)?.push({
          arm: pair.arm,
          units: pair.units,
          sum: pair.sum,
          sum_sq: pair.sum,
          ts: null,
          location: `variant ${JSON.stringify(pair.arm)}`,
        });
      }
      for (const e of group.experiments) {
        const error = failed.get(e.experimentKey);
        if (error !== undefined) {
          answer.set(e.experimentKey, error);
          continue;
        }
        try {
          answer.set(
            e.experimentKey,
            checkArmAggregates(
              rowsByKey.get(e.experimentKey) ?? [],
              { experimentKey: e.experimentKey, arms: e.arms, from: e.from, to: window.to },
              s.metricKind,
              "mixpanel",
            ),
          );
        } catch (error) {
          if (!(error instanceof ConnectorError)) throw error;
          answer.set(e.experimentKey, error);
        }
      }
    }
    return answer;
  }

  private async poll(window: ExperimentWindow, signal: AbortSignal): Promise<ArmAggregate[]> {
    const s = this.settings;
    const range = dateRange(window.from, window.to, s.timezone);
    const experiment = `${property(s.experimentProperty)} == ${JSON.stringify(window.experimentKey)}`;
    const inArms = `${property(s.variantProperty)} in [${window.arms.map((a) => JSON.stringify(a)).join(", ")}]`;
    const exposureWhere = `${experiment} and ${inArms}`;
    const eventWhere = s.filter === undefined ? exposureWhere : `${exposureWhere} and (${s.filter})`;

    const on = property(s.variantProperty);
    const limit = Math.max(window.arms.length, 1);
    if (s.funnelId !== undefined) {
      const { units, conversions } = await this.funnelBy(s.funnelId, on, eventWhere, range, limit, signal);
      const unitsByArm = countsOf(units);
      const conversionsByArm = countsOf(conversions);
      const rows: RawArmRow[] = [...new Set([...unitsByArm.keys(), ...conversionsByArm.keys()])].map((arm) => {
        const sum = conversionsByArm.get(arm) ?? 0;
        return {
          arm,
          units: unitsByArm.get(arm) ?? 0,
          sum,
          sum_sq: sum,
          ts: null,
          location: `variant ${JSON.stringify(arm)}`,
        };
      });
      return checkArmAggregates(rows, window, s.metricKind, "mixpanel");
    }
    const unitsRequest = this.uniqueBy(s.exposureEvent, on, exposureWhere, range, limit, signal).then(countsOf);
    if (s.valueProperty === undefined) {
      const [units, conversions] = await Promise.all([
        unitsRequest,
        this.uniqueBy(s.event, on, eventWhere, range, limit, signal).then(countsOf),
      ]);
      const arms = new Set([...units.keys(), ...conversions.keys()]);
      const rows: RawArmRow[] = [...arms].map((arm) => {
        const sum = conversions.get(arm) ?? 0;
        return {
          arm,
          units: units.get(arm) ?? 0,
          sum,
          sum_sq: sum,
          ts: null,
          location: `variant ${JSON.stringify(arm)}`,
        };
      });
      return checkArmAggregates(rows, window, s.metricKind, "mixpanel");
    }

    const value = property(s.valueProperty);
    const perArm = window.arms.map(async (arm) => {
      const where = `${eventWhere} and ${property(s.variantProperty)} == ${JSON.stringify(arm)}`;
      const [sum, sumSq] = await Promise.all([
        this.sum(value, where, range, signal),
        this.sum(`${value} * ${value}`, where, range, signal),
      ]);
      return { arm, sum, sumSq };
    });
    const [units, ...sums] = await Promise.all([unitsRequest, ...perArm]);
    const rows: RawArmRow[] = [];
    for (const arm of units.keys()) {
      if (!window.arms.includes(arm)) rows.push({ arm, units: units.get(arm), sum: 0, sum_sq: 0, ts: null });
    }
    for (const { arm, sum, sumSq } of sums) {
      const armUnits = units.get(arm) ?? 0;
      if (armUnits === 0 && sum === 0 && sumSq === 0) continue;
      rows.push({ arm, units: armUnits, sum, sum_sq: sumSq, ts: null, location: `variant ${JSON.stringify(arm)}` });
    }
    return checkArmAggregates(rows, window, s.metricKind, "mixpanel");
  }

  /**
   * The outcome's daily series, one point per day of the project's time zone
   * that is over by `to` (and by now) and ends after `from`, dated at the
   * instant the day ends there; the day under way is left for a later read.
   * A proportion is the day's unique converters (`event`) over the day's
   * unique users of `series_denominator_event` (two `/segmentation`
   * requests; a day with no such users has no point); a mean is the day's
   * average of `value_property` (`/segmentation/average`, one request).
   *
   * @throws ConnectorError as the Query API requests do; `bad_response` for a
   *   day the answer gives that was not asked for, or a value that is not a number
   */
  async fetchOutcomeSeries(window: SeriesWindow, signal?: AbortSignal): Promise<SeriesPoint[]> {
    assertWindow(window);
    const s = this.settings;
    const days = completedDays(window, s.timezone);
    const first = days[0];
    const last = days.at(-1);
    if (first === undefined || last === undefined) return [];
    const range: DateRange = { fromDate: first, toDate: last, days: days.length };
    if (s.valueProperty === undefined) {
      spendQueries(s.api, MIXPANEL_REQUESTS_PER_PROPORTION_SERIES);
      const [converters, users] = await linked(signal, (poll) =>
        Promise.all([
          this.dailyUnique(s.event, range, days, poll),
          this.dailyUnique(s.seriesDenominatorEvent, range, days, poll),
        ]),
      );
      const rows = days.flatMap((day) => {
        const denominator = users.get(day) ?? 0;
        if (denominator === 0) return [];
        return [
          { ts: endOfDay(s.timezone, day), value: (converters.get(day) ?? 0) / denominator, location: `date ${day}` },
        ];
      });
      return checkSeries(rows, window, "mixpanel /segmentation");
    }
    spendQueries(s.api, 1);
    const params: Record<string, string> = {
      event: s.event,
      on: property(s.valueProperty),
      unit: "day",
      from_date: range.fromDate,
      to_date: range.toDate,
    };
    if (s.filter !== undefined) params.where = s.filter;
    const { body } = await queryApiGet(s.api, "/segmentation/average", params, signal);
    const results = resultsOf(body, "/segmentation/average");
    const rows = Object.entries(results).map(([date, value]) => ({
      ts: endOfDay(s.timezone, askedDay(date, days, "/segmentation/average", "results")),
      value,
      location: `date ${date}`,
    }));
    return checkSeries(rows, window, "mixpanel /segmentation/average");
  }

  /**
   * Unique users of `event` on each day of `range` (one `/segmentation`
   * request, `unit=day`, no breakdown, `filter` applied): day → count.
   *
   * @throws ConnectorError `bad_response` for a day not asked for or a count that is not one
   */
  private async dailyUnique(
    event: string,
    range: DateRange,
    days: readonly string[],
    signal: AbortSignal,
  ): Promise<Map<string, number>> {
    const s = this.settings;
    const params: Record<string, string> = {
      event,
      from_date: range.fromDate,
      to_date: range.toDate,
      type: "unique",
      unit: "day",
    };
    if (s.filter !== undefined) params.where = s.filter;
    const { body } = await queryApiGet(s.api, "/segmentation", params, signal);
    const data = isRecord(body) ? body.data : undefined;
    const values = isRecord(data) ? data.values : undefined;
    if (!isRecord(values)) {
      throw new ConnectorError(
        "bad_response",
        `mixpanel /segmentation: the answer has no data.values object (got ${show(body)}); check api_url`,
        { details: { path: "/segmentation", event, field: "data.values" } },
      );
    }
    const segments = Object.entries(values);
    if (segments.length > 1) {
      throw new ConnectorError(
        "bad_response",
        `mixpanel /segmentation: the daily unique users of ${JSON.stringify(event)} came back in ${segments.length} segments (${segments.map(([name]) => JSON.stringify(name)).join(", ")}) where the request asked for none; check api_url`,
        { details: { path: "/segmentation", event, field: "data.values" } },
      );
    }
    const counts = new Map<string, number>();
    const [name, byDate] = segments[0] ?? [event, {}];
    const field = `data.values[${JSON.stringify(name)}]`;
    if (!isRecord(byDate)) {
      throw new ConnectorError(
        "bad_response",
        `mixpanel /segmentation: ${field} is ${show(byDate)}, not a map of dates to counts`,
        { details: { path: "/segmentation", event, field } },
      );
    }
    for (const [date, raw] of Object.entries(byDate)) {
      const day = askedDay(date, days, "/segmentation", field);
      const count = parseNumber(raw);
      if (count === undefined || count < 0 || !Number.isInteger(count)) {
        throw new ConnectorError(
          "bad_response",
          `mixpanel /segmentation: the unique users of ${JSON.stringify(event)} on ${date} (${field}) is ${show(raw)}, not a count`,
          { details: { path: "/segmentation", event, date, value: raw, field } },
        );
      }
      counts.set(day, count);
    }
    return counts;
  }

  /**
   * Users who entered saved funnel `funnelId` (its first step: the exposure)
   * and users who completed it (its last step: the conversion) per value of
   * `on`, among users whose steps match `where`, entering within `range` (one
   * bucket: `interval` is the range's length). One `GET /funnels` request. Per
   * segment its counts, or the error of that segment alone.
   *
   * @throws ConnectorError `invalid_config` naming `funnel_id` when the funnel's
   *   first step is not `exposure_event` or its last not `event`, or it has fewer
   *   than two steps; `query_failed` naming `funnel_id` when Mixpanel refuses it
   *   (no such funnel); `bad_response` when the answer is not broken down by segment
   */
  private async funnelBy(
    funnelId: number,
    on: string,
    where: string,
    range: DateRange,
    limit: number,
    signal: AbortSignal | undefined,
  ): Promise<{ units: Map<string, number | ConnectorError>; conversions: Map<string, number | ConnectorError> }> {
    const s = this.settings;
    const { body, repeatedSegments } = await queryApiGet(
      s.api,
      "/funnels",
      {
        funnel_id: String(funnelId),
        from_date: range.fromDate,
        to_date: range.toDate,
        interval: String(range.days),
        on,
        where,
        limit: String(limit),
      },
      signal,
      ["data", "*"],
      {
        hint: `check funnel_id ${funnelId}: it must be a funnel saved in project ${s.api.projectId} (GET /funnels/list lists them; the id is also in the funnel report's URL), and the property names and filter`,
        field: "funnel_id",
      },
    );
    const data = isRecord(body) ? body.data : undefined;
    if (!isRecord(data)) {
      throw new ConnectorError(
        "bad_response",
        `mixpanel /funnels: the answer has no data object (got ${show(body)}); check api_url`,
        { details: { path: "/funnels", funnelId, field: "data" } },
      );
    }
    /** Segment → the periods in which users entered, or the segment's error. */
    const periods = new Map<string, { date: string; units: number; sum: number }[] | ConnectorError>();
    for (const [date, byDay] of Object.entries(data)) {
      if (!isRecord(byDay) || Array.isArray(byDay.steps)) {
        throw new ConnectorError(
          "bad_response",
          `mixpanel /funnels: data[${JSON.stringify(date)}] is ${isRecord(byDay) ? "one funnel's steps" : show(byDay)}, not the steps of each segment of on (${on}); check api_url`,
          { details: { path: "/funnels", funnelId, date, field: `data[${JSON.stringify(date)}]` } },
        );
      }
      for (const [segment, entry] of Object.entries(byDay)) {
        // Mixpanel adds the funnel over every segment; the arms are read from their own segments.
        if (segment === "$overall") continue;
        const known = periods.get(segment) ?? [];
        if (known instanceof ConnectorError) continue;
        const counts = this.funnelCounts(funnelId, segment, date, entry);
        if (counts instanceof ConnectorError) periods.set(segment, counts);
        else periods.set(segment, [...known, { date, ...counts }]);
      }
    }
    const units = new Map<string, number | ConnectorError>();
    const conversions = new Map<string, number | ConnectorError>();
    for (const [segment, found] of periods) {
      const entered = found instanceof ConnectorError ? [] : found.filter((p) => p.units !== 0 || p.sum !== 0);
      const error =
        found instanceof ConnectorError
          ? found
          : entered.length > 1
            ? new ConnectorError(
                "bad_response",
                `mixpanel /funnels: users of ${JSON.stringify(segment)} entered funnel ${funnelId} in ${entered.length} periods (${entered.map((p) => p.date).join(", ")}), and users cannot be added across periods; the window of ${range.days} days should be one period`,
                { details: { path: "/funnels", funnelId, segment, periods: entered.length, field: "data" } },
              )
            : undefined;
      units.set(segment, error ?? entered[0]?.units ?? 0);
      conversions.set(segment, error ?? entered[0]?.sum ?? 0);
    }
    for (const [segment, keyPath] of repeatedSegments) {
      const error = new ConnectorError(
        "bad_response",
        `mixpanel /funnels: ${keyPath.length === 3 ? `the segment ${JSON.stringify(segment)} appears twice in data[${JSON.stringify(keyPath[1])}]` : `the steps of ${JSON.stringify(segment)} name ${JSON.stringify(keyPath.at(-1))} twice`}, two counts where there is one; check experiment_property, variant_property and api_url`,
        { details: { path: "/funnels", funnelId, segment, field: `data[${JSON.stringify(keyPath[1])}]` } },
      );
      units.set(segment, error);
      conversions.set(segment, error);
    }
    return { units, conversions };
  }

  /**
   * The users who entered (first step's count) and completed (last step's
   * count) funnel `funnelId` in one segment and period: `entry` is the
   * segment's steps, as a list or as `{ steps: [...] }`.
   *
   * @throws ConnectorError `invalid_config` naming `funnel_id` when the steps are not the exposure … the conversion
   */
  private funnelCounts(
    funnelId: number,
    segment: string,
    date: string,
    entry: unknown,
  ): { units: number; sum: number } | ConnectorError {
    const s = this.settings;
    const field = `data[${JSON.stringify(date)}][${JSON.stringify(segment)}]`;
    const steps = Array.isArray(entry)
      ? entry
      : isRecord(entry) && Array.isArray(entry.steps)
        ? entry.steps
        : undefined;
    if (steps === undefined) {
      return new ConnectorError(
        "bad_response",
        `mixpanel /funnels: ${field} is ${show(entry)}, not a list of funnel steps`,
        { details: { path: "/funnels", funnelId, segment, field } },
      );
    }
    const first: unknown = steps[0];
    const last: unknown = steps.at(-1);
    if (steps.length < 2 || !isRecord(first) || !isRecord(last)) {
      if (steps.length < 2) {
        throw new ConnectorError(
          "invalid_config",
          `mixpanel connector, field funnel_id: funnel ${funnelId} has ${steps.length} step${steps.length === 1 ? "" : "s"}; a funnel metric needs the exposure as its first step and the conversion as its last. Save a funnel "${s.exposureEvent}" → … → "${s.event}" and write its id`,
          { details: { field: "funnel_id", value: funnelId, steps: steps.length } },
        );
      }
      return new ConnectorError("bad_response", `mixpanel /funnels: ${field} holds a step that is not an object`, {
        details: { path: "/funnels", funnelId, segment, field },
      });
    }
    for (const [step, expected, setting, index] of [
      [first, s.exposureEvent, "exposure_event", 1],
      [last, s.event, "event", steps.length],
    ] as const) {
      const names = [
        ...new Set([step.event, step.goal, step.step_label].filter((n): n is string => typeof n === "string")),
      ];
      if (!names.includes(expected)) {
        const shown = names.map((n) => JSON.stringify(n)).join(" / ") || "unnamed";
        throw new ConnectorError(
          "invalid_config",
          `mixpanel connector, field funnel_id: step ${index} of funnel ${funnelId} is ${shown}, not ${setting} ${JSON.stringify(expected)}; units are the users who entered the funnel's first step (the exposure) and conversions those who completed its last (the conversion): save the funnel with "${s.exposureEvent}" first and "${s.event}" last, or set ${setting} to the funnel's step`,
          { details: { field: "funnel_id", value: funnelId, step: index, event: names[0] ?? null, expected, setting } },
        );
      }
    }
    const units = parseNumber(first.count);
    const sum = parseNumber(last.count);
    for (const [value, raw, index] of [
      [units, first.count, 0],
      [sum, last.count, steps.length - 1],
    ] as const) {
      if (value === undefined || value < 0 || !Number.isInteger(value)) {
        return new ConnectorError(
          "bad_response",
          `mixpanel /funnels: the count of step ${index + 1} of ${JSON.stringify(segment)} on ${date} (${field}[${index}].count) is ${show(raw)}, not a count`,
          {
            details: {
              path: "/funnels",
              funnelId,
              segment,
              date,
              value: raw ?? null,
              field: `${field}[${index}].count`,
            },
          },
        );
      }
    }
    return { units: units ?? 0, sum: sum ?? 0 };
  }

  async close(): Promise<void> {}

  /**
   * Unique users of `event` per value of `on` (at most `limit` values), over
   * the whole range: per segment its count, or the error of that segment alone
   * (a count that is not one, or one split over periods).
   *
   * @throws ConnectorError `bad_response` when the answer has no `data.values` object
   */
  private async uniqueBy(
    event: string,
    on: string,
    where: string,
    range: DateRange,
    limit: number,
    signal: AbortSignal | undefined,
  ): Promise<Map<string, number | ConnectorError>> {
    const { body, repeatedSegments } = await queryApiGet(
      this.settings.api,
      "/segmentation",
      {
        event,
        from_date: range.fromDate,
        to_date: range.toDate,
        on,
        where,
        type: "unique",
        interval: String(range.days),
        limit: String(limit),
      },
      signal,
      ["data", "values"],
    );
    const data = isRecord(body) ? body.data : undefined;
    const values = isRecord(data) ? data.values : undefined;
    if (!isRecord(values)) {
      throw new ConnectorError(
        "bad_response",
        `mixpanel /segmentation: the answer has no data.values object (got ${show(body)}); check api_url`,
        { details: { path: "/segmentation", event, field: "data.values" } },
      );
    }
    const counts = new Map<string, number | ConnectorError>();
    for (const [segment, byDate] of Object.entries(values)) {
      counts.set(segment, segmentCount(event, segment, byDate, range));
    }
    // JSON.parse kept one of the repeated entries: the segment's count is unknown, and refused rather than guessed.
    for (const [segment, keyPath] of repeatedSegments) {
      const field = `data.values[${JSON.stringify(segment)}]`;
      const twice =
        keyPath.length === 3
          ? `the segment ${JSON.stringify(segment)} appears twice in data.values`
          : `${field} names ${JSON.stringify(keyPath.at(-1))} twice`;
      counts.set(
        segment,
        new ConnectorError(
          "bad_response",
          `mixpanel /segmentation: ${twice}, two counts of unique users of ${JSON.stringify(event)} where there is one; check experiment_property, variant_property and api_url`,
          { details: { path: "/segmentation", segment, field } },
        ),
      );
    }
    return counts;
  }

  /** Σ of `expression` over the events matching `where`, over the whole range. */
  private async sum(
    expression: string,
    where: string,
    range: DateRange,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    const { body } = await queryApiGet(
      this.settings.api,
      "/segmentation/sum",
      {
        event: this.settings.event,
        on: expression,
        where,
        unit: "day",
        from_date: range.fromDate,
        to_date: range.toDate,
      },
      signal,
    );
    let total = 0;
    for (const [date, value] of Object.entries(resultsOf(body, "/segmentation/sum"))) {
      const n = parseNumber(value);
      if (n === undefined) {
        throw new ConnectorError(
          "bad_response",
          `mixpanel /segmentation/sum: the sum on ${date} is ${show(value)}, not a number; check that value_property is numeric`,
          { details: { path: "/segmentation/sum", date, value } },
        );
      }
      total += n;
    }
    return total;
  }
}

/** The one count of a segment's `{ date: count }` map, or the error of that segment. */
function segmentCount(event: string, segment: string, byDate: unknown, range: DateRange): number | ConnectorError {
  const field = `data.values[${JSON.stringify(segment)}]`;
  if (!isRecord(byDate)) {
    return new ConnectorError(
      "bad_response",
      `mixpanel /segmentation: ${field} is ${show(byDate)}, not a map of dates to counts`,
      { details: { path: "/segmentation", segment, field } },
    );
  }
  const nonZero: number[] = [];
  for (const [date, raw] of Object.entries(byDate)) {
    // Numeric text ("70") reads as its number, as from every other source (parseNumber); anything else is no count.
    const count = parseNumber(raw);
    if (count === undefined || count < 0) {
      return new ConnectorError(
        "bad_response",
        `mixpanel /segmentation: the count of ${JSON.stringify(segment)} on ${date} (${field}) is ${show(raw)}, not a count`,
        { details: { path: "/segmentation", segment, date, value: raw, field } },
      );
    }
    if (count !== 0) nonZero.push(count);
  }
  if (nonZero.length > 1) {
    return new ConnectorError(
      "bad_response",
      `mixpanel /segmentation: unique users of ${JSON.stringify(event)} for ${JSON.stringify(segment)} came back in ${nonZero.length} periods, and unique counts cannot be added across periods; the window of ${range.days} days should be one period`,
      { details: { path: "/segmentation", segment, periods: nonZero.length, field } },
    );
  }
  return nonZero[0] ?? 0;
}

/** Requests of a proportion's outcome series: daily converters, daily users of the denominator event. */
const MIXPANEL_REQUESTS_PER_PROPORTION_SERIES = 2;

/**
 * The days of `zone` whose points a series read of `window` returns: each day
 * that ends after `from` and by `to` (and by now: a day under way has no point yet).
 */
function completedDays(window: SeriesWindow, zone: string): string[] {
  const upTo = new Date(Math.min(window.to.getTime(), Date.now()));
  const first = dayIn(zone, window.from);
  const last = previousDay(dayIn(zone, upTo));
  return last < first ? [] : daysFrom(first, last);
}

/**
 * `date` of an answer (`yyyy-mm-dd`, or a timestamp starting with it) as one of the `days` asked for.
 *
 * @throws ConnectorError `bad_response` for a day not asked for
 */
function askedDay(date: string, days: readonly string[], path: string, field: string): string {
  const day = date.slice(0, 10);
  if (!days.includes(day)) {
    throw new ConnectorError(
      "bad_response",
      `mixpanel ${path}: ${field} has a value for ${JSON.stringify(date)}, a day the request did not ask for (${days[0]} to ${days.at(-1)}); check api_url and timezone`,
      { details: { path, field, date } },
    );
  }
  return day;
}

/** The counts of a one-experiment read; the first segment error is the read's. */
function countsOf(counts: ReadonlyMap<string, number | ConnectorError>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [segment, count] of counts) {
    if (count instanceof ConnectorError) throw count;
    out.set(segment, count);
  }
  return out;
}

/** One batched request pair: experiments sharing a date range, and what to ask. */
interface BatchGroup {
  readonly experiments: BatchWindow["experiments"][number][];
  readonly range: DateRange;
  readonly on: string;
  readonly where: string;
  /** Segment name ("<key> | <arm>") → the (experiment, arm) it stands for. */
  readonly pairs: ReadonlyMap<string, { key: string; arm: string }>;
}

/**
 * Splits a batch into request groups: experiments whose windows start on the
 * same day (in order of first appearance), at most {@link MIXPANEL_BATCH_MAX_KEYS}
 * keys, a `where` of at most {@link MIXPANEL_BATCH_MAX_WHERE_CHARS} characters
 * (an experiment alone may exceed it) and {@link MIXPANEL_MAX_SEGMENTS}
 * pairs, and no two (experiment, arm) pairs with the same segment name (a key
 * or arm holding " | " could collide).
 */
function planBatch(window: BatchWindow, s: MixpanelSettings): BatchGroup[] {
  const experiment = property(s.experimentProperty);
  const variant = property(s.variantProperty);
  const on = `${experiment} + ${JSON.stringify(SEGMENT_SEPARATOR)} + ${variant}`;
  const byDay = new Map<string, BatchWindow["experiments"][number][]>();
  for (const e of window.experiments) {
    const day = dayIn(s.timezone, e.from);
    byDay.set(day, [...(byDay.get(day) ?? []), e]);
  }
  const groups: BatchGroup[] = [];
  for (const experiments of byDay.values()) {
    const range = dateRange(experiments[0]?.from ?? window.to, window.to, s.timezone);
    let current: BatchWindow["experiments"][number][] = [];
    let pairs = new Map<string, { key: string; arm: string }>();
    const close = (): void => {
      if (current.length > 0) groups.push({ experiments: current, range, on, where: whereOf(current), pairs });
      current = [];
      pairs = new Map();
    };
    const whereOf = (list: readonly BatchWindow["experiments"][number][]): string => {
      // Experiments with the same arms share one clause: `(experiment in [keys] and variant in [arms])`.
      const byArms = new Map<string, { keys: string[]; arms: readonly string[] }>();
      for (const e of list) {
        const id = JSON.stringify(e.arms);
        const clause = byArms.get(id) ?? { keys: [], arms: e.arms };
        clause.keys.push(e.experimentKey);
        byArms.set(id, clause);
      }
      return [...byArms.values()]
        .map(
          (c) =>
            `(${experiment} in [${c.keys.map(literal).join(", ")}] and ${variant} in [${c.arms.map(literal).join(", ")}])`,
        )
        .join(" or ");
    };
    for (const e of experiments) {
      const mine = e.arms.map(
        (arm) => [`${e.experimentKey}${SEGMENT_SEPARATOR}${arm}`, { key: e.experimentKey, arm }] as const,
      );
      const fits =
        current.length < MIXPANEL_BATCH_MAX_KEYS &&
        pairs.size + mine.length <= MIXPANEL_MAX_SEGMENTS &&
        whereOf([...current, e]).length <= MIXPANEL_BATCH_MAX_WHERE_CHARS &&
        mine.every(([name]) => !pairs.has(name));
      if (!fits) close();
      current.push(e);
      for (const [name, pair] of mine) pairs.set(name, pair);
    }
    close();
  }
  return groups;
}

/**
 * The (experiment, arm) a batched request's segment stands for: one the request
 * asked for, or else an arm of one of its experiments it did not ask for (the
 * experiment's rows then fail their check).
 *
 * @throws ConnectorError `bad_response` when the segment names no experiment of the request
 */
function attribute(segment: string, group: BatchGroup, path: string): { key: string; arm: string } {
  const asked = group.pairs.get(segment);
  if (asked !== undefined) return asked;
  const owner = group.experiments
    .map((e) => e.experimentKey)
    .filter((key) => segment.startsWith(`${key}${SEGMENT_SEPARATOR}`))
    .sort((a, b) => b.length - a.length)[0];
  if (owner === undefined) {
    throw new ConnectorError(
      "bad_response",
      `mixpanel ${path}: the segment ${JSON.stringify(segment)} names no experiment of the ${group.experiments.length} this request asked for (segments are "<experiment> | <arm>"); check experiment_property, variant_property and api_url`,
      { details: { path, field: path === "/funnels" ? "data" : "data.values", segment } },
    );
  }
  return { key: owner, arm: segment.slice(owner.length + SEGMENT_SEPARATOR.length) };
}

/** A string literal of Mixpanel's expression grammar (JSON's escaping: quotes and backslashes cannot end it early). */
function literal(value: string): string {
  return JSON.stringify(value);
}

interface DateRange {
  fromDate: string;
  toDate: string;
  days: number;
}

/** The inclusive yyyy-mm-dd range Mixpanel takes: the days of the project's time zone `zone` that `from` and `to` fall on. */
function dateRange(from: Date, to: Date, zone: string): DateRange {
  const fromDate = dayIn(zone, from);
  const toDate = dayIn(zone, to);
  return { fromDate, toDate, days: daysFrom(fromDate, toDate).length };
}

/** `properties["name"]` with the name escaped as a string literal. */
function property(name: string): string {
  return `properties[${JSON.stringify(name)}]`;
}

function resultsOf(body: unknown, path: string): Record<string, unknown> {
  const results = isRecord(body) ? body.results : undefined;
  if (!isRecord(results)) {
    throw new ConnectorError(
      "bad_response",
      `mixpanel ${path}: the answer has no results object (got ${show(body)}); check api_url`,
      {
        details: { path },
      },
    );
  }
  return results;
}
