/**
 * `ga4`: per-arm aggregates from Google Analytics 4 through the Data API's
 * `runReport` (`data-api-client.ts`: the official `@google-analytics/data`
 * client on its REST transport, a service account's key).
 *
 * The experiment and the arm are two custom dimensions the team registers in
 * GA4 (`experiment_dimension`, default `customUser:experiment_key`;
 * `arm_dimension`, default `customUser:experiment_arm`: user properties set
 * at exposure; event-scoped `customEvent:` parameters work when every event
 * carries them). One read is two reports, each broken down by both
 * dimensions and filtered to the experiments and arms asked for
 * (`inListFilter`, case-sensitive), over whole days of the property's time
 * zone:
 *
 * 1. the **outcome report**, filtered to `eventName == event`:
 *    - proportion: `units_metric` (`totalUsers`, or `activeUsers`) of the
 *      event: users who converted, each once, so `sum = sum_sq = conversions`.
 *      Not `keyEvents:<event>` or `eventCount`: they count events, and a user
 *      who converts twice would count twice, which is not a proportion of
 *      users.
 *    - mean: `value_metric` (Σx, e.g. `eventValue`, `purchaseRevenue` or a
 *      custom metric `customEvent:amount`) and `value_squared_metric` (Σx²).
 *      GA4 sums metrics and gives no sum of squares, so the team sends each
 *      value's square as a second event parameter (`amount_squared`) and
 *      registers it as a custom metric; without it a mean is refused
 *      (`invalid_config`). GA4 sums per event: Σx² is the per-user Σx² only
 *      when each user fires the event at most once (as Mixpanel's).
 * 2. the **units report**: `units_metric` with the two dimensions, filtered to
 *    `exposure_event` when it is set (else every user the dimensions were set
 *    for). Sent after the outcome report, so the units are counted at least as
 *    late as the conversions (GA4 keeps processing events of the last hours).
 *
 * Batches (`fetchBatchAggregates`): the same two reports for up to
 * {@link GA4_BATCH_MAX_KEYS} experiments at once (`inListFilter` on the
 * experiment dimension), from the earliest window start of the batch: an
 * experiment's dimension values exist only once it started, so a longer range
 * adds nothing to it (an experiment key must not be reused).
 *
 * Dates: `runReport` takes whole days (`YYYY-MM-DD`) in the property's
 * reporting time zone, which every answer names (`metadata.timeZone`). A
 * window (from, to] (UTC instants) is read as the days of `from` and of the
 * last instant before `to` in that zone. The connector starts with UTC and
 * learns the zone from its first answer; when the property's zone gives
 * other days for the window, the read is made again with them (once: two
 * more requests of the budget) and every later read uses the property's zone.
 * The aggregates are as of the read (`ts: null`).
 *
 * Partial data is refused, never used: an answer with
 * `metadata.dataLossFromOtherRow` (rows folded into "(other)": some arm would
 * be undercounted), with `samplingMetadatas` (the counts are estimates from a
 * sample) or `subjectToThresholding` (rows withheld for privacy) is a
 * `bad_response` naming the flag and the fix.
 */
import { guardedFetch } from "@outcome-runtime/netguard";
import {
  GOOGLE_TOKEN_URL,
  type KeyOrigin,
  parseServiceAccountKey,
  readKeyFile,
  type ServiceAccountKey,
} from "../bigquery/service-account";
import { assertWindow, checkArmAggregates, type RawArmRow } from "../boundary-checks";
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
import { credentialFields, credentialRequirements, credentialValue } from "../credentials";
import { type PollCost, type RequestBudgetLimits, requestBudget } from "../request-budget";
import { normalizeApiUrl, vendorApiUrl } from "../vendor-hosts";
import { DataApiClient, type RunReportRequest, type RunReportResponse } from "./data-api-client";

/** The Data API's documented endpoint. */
const GA4_API_URL = "https://analyticsdata.googleapis.com";

/** The quota page the budget's messages cite. */
const GA4_QUOTAS_URL = "https://developers.google.com/analytics/devguides/reporting/data/v1/quotas";

/**
 * A standard property's Core quotas (the quota page, and `PropertyQuota` in
 * the REST reference): 200,000 tokens a day, 40,000 an hour, 14,000 per
 * Cloud project an hour, 10 concurrent requests; "most requests consume fewer
 * than 10 tokens". The binding one over a day is the daily quota: 200,000 /
 * 24 h / 10 tokens = 833 requests an hour.
 */
export const GA4_TOKENS_PER_DAY = 200_000;
export const GA4_TOKENS_PER_REQUEST = 10;
export const GA4_REQUESTS_PER_HOUR = Math.floor(GA4_TOKENS_PER_DAY / 24 / GA4_TOKENS_PER_REQUEST);
export const GA4_MAX_CONCURRENT = 10;
/** Polling plans on half the budget: the rest is for retries, the zone's second read, and the team's own reports. */
const GA4_PLANNED_SHARE = 0.5;

/**
 * Experiment keys per batched report: the `inListFilter` stays a few
 * kilobytes, and the rows (one per experiment and arm) far below `limit`'s
 * 250,000.
 */
export const GA4_BATCH_MAX_KEYS = 100;

/** The most rows one report may return (`limit`, RunReportRequest). */
const GA4_MAX_ROWS = 250_000;

/** Reports one read sends: the outcome report and the units report. */
const GA4_REPORTS_PER_READ = 2;

const FIELDS = [
  "property_id",
  ...credentialFields("ga4"),
  "experiment_dimension",
  "arm_dimension",
  "event",
  "exposure_event",
  "units_metric",
  "value_metric",
  "value_squared_metric",
  "api_url",
  "timeout",
] as const;

const GA4_DEFAULTS = Object.freeze({
  experimentDimension: "customUser:experiment_key",
  armDimension: "customUser:experiment_arm",
  unitsMetric: "totalUsers" as const,
  timeoutSeconds: 60,
});

/** An API name of the Data API schema: a built-in (`totalUsers`) or a custom one (`customUser:experiment_key`). */
const API_NAME = /^[A-Za-z][A-Za-z0-9_]*(?::[A-Za-z0-9_]+)?$/u;

interface Ga4Settings {
  readonly propertyId: string;
  readonly apiUrl: string;
  readonly experimentDimension: string;
  readonly armDimension: string;
  readonly event: string;
  readonly exposureEvent: string | undefined;
  readonly unitsMetric: "totalUsers" | "activeUsers";
  /** A mean's Σx and Σx² metrics; undefined for a proportion. */
  readonly value: { readonly metric: string; readonly squaredMetric: string } | undefined;
  readonly timeoutMs: number;
}

/** The property id from `property_id` (a number, or its digits, or `properties/<digits>`). */
function readPropertyId(reader: ConfigReader): string {
  const value = reader.raw("property_id");
  if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) return String(value);
  if (typeof value === "string") {
    const match = /^(?:properties\/)?([1-9][0-9]*)$/u.exec(value.trim());
    if (match?.[1] !== undefined) return match[1];
  }
  throw reader.invalid(
    "property_id",
    value === undefined ? "is missing" : `${show(value)} is not a GA4 property id`,
    "write the numeric property id (GA4 Admin → Property settings → Property ID, e.g. 123456789), not the measurement id (G-...)",
    value === undefined ? {} : { value },
  );
}

function readApiName(
  reader: ConfigReader,
  field: string,
  fallback: string | undefined,
  fix: string,
): string | undefined {
  const value = reader.optionalString(field, fix) ?? fallback;
  if (value !== undefined && !API_NAME.test(value)) {
    throw reader.invalid(field, `${show(value)} is not an API name of the Data API`, fix, { value });
  }
  return value;
}

function readSettings(reader: ConfigReader, context: ConnectorContext): Ga4Settings {
  const propertyId = readPropertyId(reader);
  const dimensionFix = (scope: string) =>
    `write the API name of a custom dimension, e.g. customUser:${scope} (a user property) or customEvent:${scope} (an event parameter), as GA4 Admin → Custom definitions shows it`;
  const experimentDimension =
    readApiName(reader, "experiment_dimension", GA4_DEFAULTS.experimentDimension, dimensionFix("experiment_key")) ??
    GA4_DEFAULTS.experimentDimension;
  const armDimension =
    readApiName(reader, "arm_dimension", GA4_DEFAULTS.armDimension, dimensionFix("experiment_arm")) ??
    GA4_DEFAULTS.armDimension;
  if (experimentDimension === armDimension) {
    throw reader.invalid(
      "arm_dimension",
      `is the same dimension as experiment_dimension (${experimentDimension})`,
      "register two custom dimensions: one holding the experiment key, one holding the arm",
    );
  }
  const event = reader.string(
    "event",
    "name the GA4 event that counts as a conversion or carries the value, e.g. purchase",
  );
  const exposureEvent = reader.optionalString(
    "exposure_event",
    "name the event sent when a user is exposed, e.g. experiment_exposure",
  );
  const unitsMetric = reader.oneOf("units_metric", ["totalUsers", "activeUsers"] as const, GA4_DEFAULTS.unitsMetric);
  const valueFix =
    "write the API name of the metric summing the values, e.g. eventValue, purchaseRevenue or customEvent:amount";
  const valueMetric = readApiName(reader, "value_metric", undefined, valueFix);
  const squaredMetric = readApiName(
    reader,
    "value_squared_metric",
    undefined,
    "write the API name of the custom metric summing each value's square, e.g. customEvent:amount_squared",
  );
  let value: Ga4Settings["value"];
  if (context.metricKind === "mean") {
    if (valueMetric === undefined) {
      throw reader.invalid("value_metric", "is missing, but the metric is a mean", valueFix);
    }
    if (squaredMetric === undefined) {
      throw reader.invalid(
        "value_squared_metric",
        "is missing, but the metric is a mean: GA4 sums a metric per arm but gives no sum of squares, which the variance of a mean needs",
        "send each value's square as a second event parameter (e.g. amount_squared = amount * amount), register it in GA4 Admin → Custom definitions as a custom metric, and name it here (e.g. customEvent:amount_squared); or make the metric a proportion",
      );
    }
    value = { metric: valueMetric, squaredMetric };
  } else {
    for (const field of ["value_metric", "value_squared_metric"] as const) {
      if (reader.has(field)) {
        throw reader.invalid(
          field,
          "is set, but the metric is a proportion",
          `remove ${field}, or make the metric a mean`,
        );
      }
    }
  }
  const apiText = reader.optionalString("api_url", `write ${GA4_API_URL}, or leave it out`);
  const apiUrl =
    apiText === undefined
      ? GA4_API_URL
      : vendorApiUrl(reader, "api_url", apiText, [GA4_API_URL], context.allowedApiUrls?.ga4);
  return {
    propertyId,
    apiUrl,
    experimentDimension,
    armDimension,
    event,
    exposureEvent,
    unitsMetric,
    value,
    timeoutMs: reader.durationSeconds("timeout", GA4_DEFAULTS.timeoutSeconds) * 1000,
  };
}

/**
 * Creates a `ga4` connector. Settings are checked now; the key is read and
 * checked on the first request (`signals test` and `validate` check settings
 * without one).
 *
 * @throws ConnectorError `invalid_config` naming the field (a ratio metric, a
 *   mean without `value_squared_metric`, a property id that is not one);
 *   `source_refused` for an `api_url` Google does not own and the operator did not allow
 */
export function createGa4Connector(config: ConnectorConfig, context: ConnectorContext): SignalConnector {
  if (context.metricKind === "ratio") {
    throw new ConnectorError(
      "invalid_config",
      "ga4 connector: the metric is a ratio, whose delta-method variance needs each unit's numerator and denominator (den_sum, den_sum_sq, num_den_sum), which GA4's reports do not give; read it with a bigquery connector over the GA4 BigQuery export, or make it a mean",
      { details: { field: "type", value: "ga4", kind: "ratio" } },
    );
  }
  const reader = new ConfigReader(config, FIELDS);
  const settings = readSettings(reader, context);
  const [requirement] = credentialRequirements(reader);
  if (requirement === undefined) throw new Error("ga4: no credential requirement");
  const credential = credentialValue(context.credentials, requirement, "ga4");
  const origin: KeyOrigin = { field: requirement.field, name: requirement.ref.name, connector: "ga4" };
  const allowed = context.allowedApiUrls?.ga4 ?? [];
  let parsed: ServiceAccountKey | undefined;
  const key = async (): Promise<ServiceAccountKey> => {
    if (requirement.credential === "credentials_file") {
      // Read at each token request: a rotated file is used from its next token.
      return parseServiceAccountKey(
        await readKeyFile({ ...origin, path: credential }),
        { ...origin, path: credential },
        [GOOGLE_TOKEN_URL, ...allowed],
      );
    }
    parsed ??= parseServiceAccountKey(credential, origin, [GOOGLE_TOKEN_URL, ...allowed]);
    return parsed;
  };
  const budget = requestBudget(ga4BudgetLimits(settings.apiUrl, settings.propertyId));
  const client = new DataApiClient({
    apiUrl: settings.apiUrl,
    propertyId: settings.propertyId,
    timeoutMs: Math.min(settings.timeoutMs, context.maxTimeoutMs ?? Number.POSITIVE_INFINITY),
    // Held to the outbound policy and to the API's origin: a redirect elsewhere is refused, the token stays with Google.
    fetch:
      context.fetch ?? guardedFetch({ policy: context.outboundPolicy, origins: [new URL(settings.apiUrl).origin] }),
    tokenFetch: (k) =>
      context.fetch ??
      guardedFetch({ policy: context.outboundPolicy, origins: [new URL(k.tokenUrl).origin], maxRedirects: 0 }),
    key,
    budget,
  });
  return new Ga4Connector(settings, client, context.metricKind);
}

function ga4BudgetLimits(apiUrl: string, propertyId: string): RequestBudgetLimits {
  return {
    vendor: "ga4",
    scope: `property ${propertyId}`,
    key: `${apiUrl}|${propertyId}`,
    perHour: GA4_REQUESTS_PER_HOUR,
    maxConcurrent: GA4_MAX_CONCURRENT,
    docs: GA4_QUOTAS_URL,
  };
}

/**
 * What polling a `ga4` connector costs its property's budget: two reports per
 * batch of up to {@link GA4_BATCH_MAX_KEYS} experiments, whatever the arms;
 * {@link GA4_REQUESTS_PER_HOUR} an hour, half of them planned for polling.
 *
 * @returns null when the settings name no property (the settings check reports that)
 */
export function ga4PollCost(config: ConnectorConfig): PollCost | null {
  const raw = config.property_id;
  const propertyId =
    typeof raw === "number" && Number.isSafeInteger(raw) && raw > 0
      ? String(raw)
      : typeof raw === "string"
        ? /^(?:properties\/)?([1-9][0-9]*)$/u.exec(raw.trim())?.[1]
        : undefined;
  if (propertyId === undefined) return null;
  const apiUrl = (typeof config.api_url === "string" ? normalizeApiUrl(config.api_url) : undefined) ?? GA4_API_URL;
  return {
    limits: ga4BudgetLimits(apiUrl, propertyId),
    plannedPerHour: Math.floor(GA4_REQUESTS_PER_HOUR * GA4_PLANNED_SHARE),
    requestsPerRound: (experiments) => GA4_REPORTS_PER_READ * Math.max(1, Math.ceil(experiments / GA4_BATCH_MAX_KEYS)),
  };
}

/** Thrown inside a read when the answer names a time zone giving other days than the ones asked for. */
class ZoneChanged extends Error {}

/** An experiment of a read, with its arms. */
interface ReadExperiment {
  readonly experimentKey: string;
  readonly arms: readonly string[];
}

/** One experiment's rows of a report, or the error of that experiment alone. */
type ReportRows = Map<string, Map<string, { values: unknown[]; count: number }>>;

class Ga4Connector implements SignalConnector {
  readonly type = "ga4";
  /** The property's reporting time zone, once an answer named it. */
  private zone: string | undefined;

  constructor(
    private readonly settings: Ga4Settings,
    private readonly client: DataApiClient,
    private readonly metricKind: "proportion" | "mean",
  ) {}

  describe(): string {
    const s = this.settings;
    const what =
      s.value === undefined
        ? `${s.unitsMetric} of ${JSON.stringify(s.event)}`
        : `${s.value.metric} of ${JSON.stringify(s.event)}`;
    const host = s.apiUrl === GA4_API_URL ? "" : ` (${new URL(s.apiUrl).host})`;
    return `ga4 property ${s.propertyId}${host}: ${what} by ${s.experimentDimension} and ${s.armDimension}, units = ${s.unitsMetric}${s.exposureEvent === undefined ? "" : ` of ${JSON.stringify(s.exposureEvent)}`}`;
  }

  async fetchArmAggregates(window: ExperimentWindow, signal?: AbortSignal): Promise<ArmAggregate[]> {
    assertWindow(window);
    const answer = await this.read([window], window.from, window.to, signal);
    const result = answer.get(window.experimentKey);
    if (result instanceof ConnectorError) throw result;
    return result ?? [];
  }

  /** Many experiments in two reports per {@link GA4_BATCH_MAX_KEYS} keys; see the header. */
  async fetchBatchAggregates(window: BatchWindow, signal?: AbortSignal): Promise<BatchAggregates> {
    for (const e of window.experiments) assertWindow({ from: e.from, to: window.to, arms: e.arms });
    if (window.experiments.length === 0) return new Map();
    const groups: BatchWindow["experiments"][number][][] = [];
    for (let i = 0; i < window.experiments.length; i += GA4_BATCH_MAX_KEYS) {
      groups.push(window.experiments.slice(i, i + GA4_BATCH_MAX_KEYS));
    }
    // The whole batch's reports are counted before any is sent.
    this.client.spend(GA4_REPORTS_PER_READ * groups.length);
    const answers = await Promise.all(
      groups.map((group) => {
        const from = new Date(Math.min(...group.map((e) => e.from.getTime())));
        return this.read(group, from, window.to, signal, false);
      }),
    );
    const merged: BatchAggregates = new Map();
    for (const answer of answers) for (const [key, value] of answer) merged.set(key, value);
    return merged;
  }

  async fetchOutcomeSeries(): Promise<SeriesPoint[]> {
    throw new ConnectorError(
      "unsupported",
      "ga4 connector: the outcome's own series is not read from GA4 (a report's per-day unique users cannot be added into a cumulative series); read the series with a bigquery connector over the GA4 BigQuery export",
      { details: { field: "type" } },
    );
  }

  /**
   * Before any poll: one small report with the connector's dimensions and
   * metrics over the last day proves the key, the service account's access
   * to the property and that every dimension and metric exists (GA4 answers
   * 400 naming one that does not), and learns the property's time zone.
   */
  async check(signal?: AbortSignal): Promise<void> {
    this.client.spend(1);
    const to = new Date();
    const request = this.outcomeRequest(
      ["outcome-runtime-check"],
      ["control", "treatment"],
      dayRange(new Date(to.getTime() - 86_400_000), to, this.zone ?? "UTC"),
    );
    try {
      this.learnZone(await this.client.runReport({ ...request, limit: 1 }, "check", signal));
    } catch (error) {
      throw this.withSetting(error);
    }
  }

  async close(): Promise<void> {}

  /**
   * The two reports of `experiments` over the days of (from, to], split by
   * experiment and checked. A read whose days change with the property's
   * time zone is made again, once.
   */
  private async read(
    experiments: readonly ReadExperiment[],
    from: Date,
    to: Date,
    signal: AbortSignal | undefined,
    spend = true,
  ): Promise<BatchAggregates> {
    if (spend) this.client.spend(GA4_REPORTS_PER_READ);
    try {
      try {
        return await this.readOnce(experiments, from, to, signal);
      } catch (error) {
        if (!(error instanceof ZoneChanged)) throw error;
        this.client.spend(GA4_REPORTS_PER_READ);
        return await this.readOnce(experiments, from, to, signal);
      }
    } catch (error) {
      throw this.withSetting(error);
    }
  }

  /**
   * A 400 about a dimension or metric, with the setting that names it
   * (`details.field`: `arm_dimension`, `value_metric`, ...), so
   * `signals test` points at its line.
   */
  private withSetting(error: unknown): unknown {
    if (!(error instanceof ConnectorError) || error.code !== "query_failed") return error;
    const name = error.details.name;
    if (typeof name !== "string" || error.details.field !== undefined) return error;
    const s = this.settings;
    const settings: [string, string | undefined][] = [
      ["experiment_dimension", s.experimentDimension],
      ["arm_dimension", s.armDimension],
      ["units_metric", s.unitsMetric],
      ["value_metric", s.value?.metric],
      ["value_squared_metric", s.value?.squaredMetric],
    ];
    const field = settings.find(([, value]) => value === name)?.[0];
    if (field === undefined) return error;
    return new ConnectorError(error.code, error.message, {
      details: { ...error.details, field },
      retryable: error.retryable,
      cause: error,
    });
  }

  private async readOnce(
    experiments: readonly ReadExperiment[],
    from: Date,
    to: Date,
    signal: AbortSignal | undefined,
  ): Promise<BatchAggregates> {
    const zone = this.zone ?? "UTC";
    const range = dayRange(from, to, zone);
    const keys = experiments.map((e) => e.experimentKey);
    const arms = [...new Set(experiments.flatMap((e) => e.arms))];
    const outcome = await this.client.runReport(this.outcomeRequest(keys, arms, range), "outcome report", signal);
    if (this.learnZone(outcome) && !sameRange(dayRange(from, to, this.zone ?? "UTC"), range)) throw new ZoneChanged();
    this.assertComplete(outcome, "outcome report");
    const units = await this.client.runReport(this.unitsRequest(keys, arms, range), "units report", signal);
    this.learnZone(units);
    if ((units.metadata?.timeZone ?? zone) !== (outcome.metadata?.timeZone ?? zone)) {
      throw new ConnectorError(
        "bad_response",
        `ga4 property ${this.settings.propertyId}: the two reports of one read name different time zones (${units.metadata?.timeZone} and ${outcome.metadata?.timeZone}); check api_url`,
        { details: { propertyId: this.settings.propertyId } },
      );
    }
    this.assertComplete(units, "units report");
    const outcomeMetrics =
      this.settings.value === undefined
        ? [this.settings.unitsMetric]
        : [this.settings.value.metric, this.settings.value.squaredMetric];
    const outcomeRows = this.rowsOf(outcome, "outcome report", outcomeMetrics, keys);
    const unitRows = this.rowsOf(units, "units report", [this.settings.unitsMetric], keys);
    const answer: BatchAggregates = new Map();
    for (const e of experiments) {
      try {
        answer.set(
          e.experimentKey,
          this.aggregates(e, from, to, unitRows.get(e.experimentKey), outcomeRows.get(e.experimentKey)),
        );
      } catch (error) {
        if (!(error instanceof ConnectorError)) throw error;
        answer.set(e.experimentKey, error);
      }
    }
    return answer;
  }

  /** Whether the answer named a time zone other than the one known (it is then the one known). */
  private learnZone(answer: RunReportResponse): boolean {
    const named = answer.metadata?.timeZone;
    if (typeof named !== "string" || named === "" || named === this.zone) return false;
    if (!isTimeZone(named)) {
      throw new ConnectorError(
        "bad_response",
        `ga4 property ${this.settings.propertyId}: the answer names the time zone ${show(named)}, which is not an IANA time zone; check api_url`,
        { details: { propertyId: this.settings.propertyId, timeZone: named } },
      );
    }
    this.zone = named;
    return true;
  }

  private filters(keys: readonly string[], arms: readonly string[], event: string | undefined) {
    const s = this.settings;
    const expressions: NonNullable<NonNullable<RunReportRequest["dimensionFilter"]>["andGroup"]>["expressions"] = [
      { filter: { fieldName: s.experimentDimension, inListFilter: { values: [...keys], caseSensitive: true } } },
      { filter: { fieldName: s.armDimension, inListFilter: { values: [...arms], caseSensitive: true } } },
    ];
    if (event !== undefined) {
      expressions.push({
        filter: { fieldName: "eventName", stringFilter: { matchType: "EXACT", value: event, caseSensitive: true } },
      });
    }
    return { andGroup: { expressions } };
  }

  private baseRequest(keys: readonly string[], arms: readonly string[], range: DayRange): RunReportRequest {
    const s = this.settings;
    return {
      dimensions: [{ name: s.experimentDimension }, { name: s.armDimension }],
      dateRanges: [{ startDate: range.startDate, endDate: range.endDate }],
      limit: Math.min(GA4_MAX_ROWS, Math.max(1, keys.length * arms.length)),
      keepEmptyRows: false,
    };
  }

  private outcomeRequest(keys: readonly string[], arms: readonly string[], range: DayRange): RunReportRequest {
    const s = this.settings;
    const metrics = s.value === undefined ? [s.unitsMetric] : [s.value.metric, s.value.squaredMetric];
    return {
      ...this.baseRequest(keys, arms, range),
      metrics: metrics.map((name) => ({ name })),
      dimensionFilter: this.filters(keys, arms, s.event),
    };
  }

  private unitsRequest(keys: readonly string[], arms: readonly string[], range: DayRange): RunReportRequest {
    const s = this.settings;
    return {
      ...this.baseRequest(keys, arms, range),
      metrics: [{ name: s.unitsMetric }],
      dimensionFilter: this.filters(keys, arms, s.exposureEvent),
    };
  }

  /** Refuses an answer GA4 marks as partial: rows folded into "(other)", sampled, or thresholded. */
  private assertComplete(answer: RunReportResponse, what: string): void {
    const p = this.settings.propertyId;
    const metadata = answer.metadata ?? {};
    if (metadata.dataLossFromOtherRow === true) {
      throw new ConnectorError(
        "bad_response",
        `ga4 property ${p} (${what}): GA4 folded some rows into "(other)" (metadata.dataLossFromOtherRow): the counts of some arms would be too low, so the report is not used; the dimensions ${this.settings.experimentDimension} and ${this.settings.armDimension} have too many values for the property's tables: read fewer experiments per batch, or read the GA4 BigQuery export with a bigquery connector`,
        { details: { propertyId: p, flag: "dataLossFromOtherRow" } },
      );
    }
    const samples = metadata.samplingMetadatas ?? [];
    if (samples.length > 0) {
      const first = samples[0];
      throw new ConnectorError(
        "bad_response",
        `ga4 property ${p} (${what}): the report is sampled (metadata.samplingMetadatas: ${first?.samplesReadCount ?? "?"} of ${first?.samplingSpaceSize ?? "?"} events read): its counts are estimates, which a decision must not rest on; shorten the experiment's window, or read the GA4 BigQuery export with a bigquery connector`,
        { details: { propertyId: p, flag: "samplingMetadatas" } },
      );
    }
    if (metadata.subjectToThresholding === true) {
      throw new ConnectorError(
        "bad_response",
        `ga4 property ${p} (${what}): GA4 applied thresholds to the report (metadata.subjectToThresholding): rows of few users may be withheld, so some arms could be undercounted; set the property's reporting identity to device-based (GA4 Admin → Reporting identity) or read the GA4 BigQuery export with a bigquery connector`,
        { details: { propertyId: p, flag: "subjectToThresholding" } },
      );
    }
  }

  /**
   * The answer's rows by experiment and arm: the metric values in the order
   * asked for, and how many rows named the pair.
   *
   * @throws ConnectorError `bad_response` when the headers are not the ones asked
   *   for, the answer is cut short (`rowCount` above its rows), or a row names no
   *   experiment of the read
   */
  private rowsOf(
    answer: RunReportResponse,
    what: string,
    metrics: readonly string[],
    keys: readonly string[],
  ): ReportRows {
    const s = this.settings;
    const p = s.propertyId;
    const dims = (answer.dimensionHeaders ?? []).map((h) => h.name);
    const mets = (answer.metricHeaders ?? []).map((h) => h.name);
    if (
      JSON.stringify(dims) !== JSON.stringify([s.experimentDimension, s.armDimension]) ||
      JSON.stringify(mets) !== JSON.stringify(metrics)
    ) {
      throw new ConnectorError(
        "bad_response",
        `ga4 property ${p} (${what}): the answer's columns are ${JSON.stringify([...dims, ...mets])}, not the dimensions and metrics asked for (${JSON.stringify([s.experimentDimension, s.armDimension, ...metrics])}); check api_url`,
        { details: { propertyId: p } },
      );
    }
    const rows = answer.rows ?? [];
    const rowCount = Number(answer.rowCount ?? rows.length);
    if (rowCount > rows.length) {
      throw new ConnectorError(
        "bad_response",
        `ga4 property ${p} (${what}): GA4 has ${rowCount} rows for the report but answered ${rows.length}; the experiments and arms asked for should give at most ${rows.length}, check arm_dimension`,
        { details: { propertyId: p, rowCount, rows: rows.length } },
      );
    }
    const known = new Set(keys);
    const out: ReportRows = new Map();
    rows.forEach((row, i) => {
      const key = row.dimensionValues?.[0]?.value;
      const arm = row.dimensionValues?.[1]?.value;
      if (typeof key !== "string" || !known.has(key) || typeof arm !== "string") {
        throw new ConnectorError(
          "bad_response",
          `ga4 property ${p} (${what}): row ${i + 1} names the experiment ${show(key)}, not one of the ${keys.length} asked for; check experiment_dimension and api_url`,
          { details: { propertyId: p, row: i + 1 } },
        );
      }
      const byArm = out.get(key) ?? new Map<string, { values: unknown[]; count: number }>();
      const seen = byArm.get(arm);
      // Metric values are decimal strings; an empty one (no value) stays "" and fails the checks as not a number.
      byArm.set(arm, { values: (row.metricValues ?? []).map((m) => m.value ?? null), count: (seen?.count ?? 0) + 1 });
      out.set(key, byArm);
    });
    return out;
  }

  /** One experiment's checked aggregates from its rows of the two reports. */
  private aggregates(
    experiment: ReadExperiment,
    from: Date,
    to: Date,
    units: ReadonlyMap<string, { values: unknown[]; count: number }> | undefined,
    outcome: ReadonlyMap<string, { values: unknown[]; count: number }> | undefined,
  ): ArmAggregate[] {
    const arms = [...new Set([...(units?.keys() ?? []), ...(outcome?.keys() ?? [])])];
    const rows: RawArmRow[] = [];
    for (const arm of arms) {
      const u = units?.get(arm);
      const o = outcome?.get(arm);
      const location = `arm ${JSON.stringify(arm)}`;
      const copies = Math.max(u?.count ?? 0, o?.count ?? 0);
      const sum = o?.values[0] ?? 0;
      const sumSq = this.settings.value === undefined ? sum : (o?.values[1] ?? 0);
      // Two rows for one arm (which GA4 never sends) are passed on as two, and refused by the checks.
      for (let i = 0; i < copies; i++) {
        rows.push({ arm, units: u?.values[0] ?? 0, sum, sum_sq: sumSq, ts: null, location });
      }
    }
    return checkArmAggregates(rows, { ...experiment, from, to }, this.metricKind, "ga4");
  }
}

/** A report's days, `YYYY-MM-DD` in the property's zone. */
interface DayRange {
  readonly startDate: string;
  readonly endDate: string;
}

/** The days of (from, to] in `zone`: the day of `from` to the day of the last instant before `to`. */
function dayRange(from: Date, to: Date, zone: string): DayRange {
  const startDate = dateIn(from, zone);
  const endDate = dateIn(new Date(Math.max(from.getTime(), to.getTime() - 1)), zone);
  return { startDate, endDate };
}

function sameRange(a: DayRange, b: DayRange): boolean {
  return a.startDate === b.startDate && a.endDate === b.endDate;
}

/** `YYYY-MM-DD` of `date` in the IANA time zone `zone`. */
function dateIn(date: Date, zone: string): string {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: zone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  }).formatToParts(date);
  const get = (type: string): string => parts.find((p) => p.type === type)?.value ?? "";
  return `${get("year")}-${get("month")}-${get("day")}`;
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
