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
 * Every read spends its requests of the project's hourly budget up front
 * (`spendQueries`): a batch of 100 experiments costs 2 requests, not 200.
 *
 * Mixpanel's funnels and insights endpoints need a report saved in the
 * Mixpanel UI (`funnel_id`, `bookmark_id`); they are not used.
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
import { isRecord } from "../http-response";
import { vendorApiUrl } from "../vendor-hosts";
import { MIXPANEL_REGION_URLS, type QueryApiSettings, queryApiGet, spendQueries } from "./query-api-client";

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
  "region",
  "api_url",
  "timeout",
] as const;

const MIXPANEL_DEFAULTS = Object.freeze({
  exposure_event: "$experiment_started",
  variant_property: "Variant name",
  experiment_property: "Experiment name",
  region: "us" as const,
  timeoutSeconds: 60,
});

const DAY_MS = 86_400_000;

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
    exposureEvent:
      reader.optionalString("exposure_event", "name the exposure event") ?? MIXPANEL_DEFAULTS.exposure_event,
    variantProperty:
      reader.optionalString("variant_property", "name the property holding the arm") ??
      MIXPANEL_DEFAULTS.variant_property,
    experimentProperty:
      reader.optionalString("experiment_property", "name the property holding the experiment key") ??
      MIXPANEL_DEFAULTS.experiment_property,
    valueProperty,
    filter: reader.optionalString("filter", 'write a Mixpanel expression, e.g. properties["platform"] == "web"'),
    region,
    // Not a ratio: refused above.
    metricKind: context.metricKind,
  };
  return new MixpanelConnector(settings);
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

/** Requests one experiment poll costs: units, then conversions (proportion) or Σ and Σ² per arm (mean). */
export function mixpanelRequestsPerPoll(hasValueProperty: boolean, arms: number): number {
  return hasValueProperty ? 1 + 2 * arms : 2;
}

/**
 * Whether `mixpanel` settings read experiments in batches: a proportion (no
 * `value_property`). A mean's Σ comes from `/segmentation/sum`, which has no breakdown.
 */
export function mixpanelReadsInBatches(config: ConnectorConfig): boolean {
  return !(typeof config.value_property === "string" && config.value_property !== "");
}

/** Requests one batched request group costs (proportion): units and conversions. */
export const MIXPANEL_REQUESTS_PER_BATCH = 2;

class MixpanelConnector implements SignalConnector {
  readonly type = "mixpanel";

  constructor(private readonly settings: MixpanelSettings) {}

  describe(): string {
    const s = this.settings;
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
      mixpanelRequestsPerPoll(this.settings.valueProperty !== undefined, window.arms.length),
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
    spendQueries(s.api, MIXPANEL_REQUESTS_PER_BATCH * groups.length);
    const answered = await linked(signal, (poll) =>
      Promise.all(
        groups.map(async (group) => {
          const limit = Math.min(MIXPANEL_MAX_SEGMENTS, group.pairs.size);
          const eventWhere = s.filter === undefined ? group.where : `(${group.where}) and (${s.filter})`;
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
        const pair = pairs.get(segment) ?? { ...attribute(segment, group), units: 0, sum: 0 };
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
    const range = dateRange(window.from, window.to);
    const experiment = `${property(s.experimentProperty)} == ${JSON.stringify(window.experimentKey)}`;
    const inArms = `${property(s.variantProperty)} in [${window.arms.map((a) => JSON.stringify(a)).join(", ")}]`;
    const exposureWhere = `${experiment} and ${inArms}`;
    const eventWhere = s.filter === undefined ? exposureWhere : `${exposureWhere} and (${s.filter})`;

    const on = property(s.variantProperty);
    const limit = Math.max(window.arms.length, 1);
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

  async fetchOutcomeSeries(window: SeriesWindow, signal?: AbortSignal): Promise<SeriesPoint[]> {
    assertWindow(window);
    const s = this.settings;
    if (s.valueProperty === undefined) {
      throw new ConnectorError(
        "unsupported",
        "mixpanel connector: the outcome series of a proportion needs a denominator that Mixpanel's segmentation API does not give; read the series with a postgres series_query instead",
        { details: { field: "value_property" } },
      );
    }
    const range = dateRange(window.from, window.to);
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
      ts: `${date.slice(0, 10)}T00:00:00Z`,
      value,
      location: `date ${date}`,
    }));
    return checkSeries(rows, window, "mixpanel /segmentation/average");
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

/** The counts of a one-experiment read; the first segment error is the read's. */
function countsOf(counts: ReadonlyMap<string, number | ConnectorError>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [segment, count] of counts) {
    if (count instanceof ConnectorError) throw count;
    out.set(segment, count);
  }
  return out;
}

/**
 * Runs `read` with a signal of its own that follows `signal`, and is aborted
 * when `read` fails: the other requests of a poll are then cancelled, as their
 * answers would be thrown away.
 */
async function linked<T>(signal: AbortSignal | undefined, read: (poll: AbortSignal) => Promise<T>): Promise<T> {
  const poll = new AbortController();
  const onAbort = (): void => poll.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await read(poll.signal);
  } catch (error) {
    poll.abort();
    throw error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
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
    const day = e.from.toISOString().slice(0, 10);
    byDay.set(day, [...(byDay.get(day) ?? []), e]);
  }
  const groups: BatchGroup[] = [];
  for (const experiments of byDay.values()) {
    const range = dateRange(experiments[0]?.from ?? window.to, window.to);
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
function attribute(segment: string, group: BatchGroup): { key: string; arm: string } {
  const asked = group.pairs.get(segment);
  if (asked !== undefined) return asked;
  const owner = group.experiments
    .map((e) => e.experimentKey)
    .filter((key) => segment.startsWith(`${key}${SEGMENT_SEPARATOR}`))
    .sort((a, b) => b.length - a.length)[0];
  if (owner === undefined) {
    throw new ConnectorError(
      "bad_response",
      `mixpanel /segmentation: the segment ${JSON.stringify(segment)} names no experiment of the ${group.experiments.length} this request asked for (segments are "<experiment> | <arm>"); check experiment_property, variant_property and api_url`,
      { details: { path: "/segmentation", field: "data.values", segment } },
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

/** The inclusive yyyy-mm-dd range Mixpanel takes (UTC dates; Mixpanel reads them in the project's time zone). */
function dateRange(from: Date, to: Date): DateRange {
  const fromDate = from.toISOString().slice(0, 10);
  const toDate = to.toISOString().slice(0, 10);
  const days = Math.round((Date.parse(`${toDate}T00:00:00Z`) - Date.parse(`${fromDate}T00:00:00Z`)) / DAY_MS) + 1;
  return { fromDate, toDate, days };
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
