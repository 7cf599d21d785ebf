/**
 * `amplitude`: per-arm aggregates from Amplitude's Dashboard REST API
 * (https://amplitude.com/docs/apis/analytics/dashboard-rest), ad hoc queries
 * (no saved chart needed). The team sets two user properties when a user is
 * exposed: `experiment_property` (the experiment key) and `arm_property` (the
 * arm); every query filters on them with a segment (`s`) and breaks down by
 * them (`g`, `g2`). Custom user properties are sent as `gp:<name>`, as the
 * page says.
 *
 * - units per arm: unique users of `exposure_event`
 *   (`GET /api/2/events/segmentation`, `m=uniques`), the window's total from
 *   `seriesCollapsed` ("the total unique users over a certain time interval");
 * - proportion: unique users of `event`, the same way;
 * - mean: Σ value from `m=sums` of `value_property` (a property metric: the
 *   property is the event's `group_by`, as the page requires), and Σ value²
 *   from `m=sums` of `value_squared_property`, an event property the team
 *   sends with each event holding the value squared. Amplitude sums per
 *   event and its formulas have no per-event square (`PROPSUM(A)*PROPSUM(A)`
 *   is (Σx)², not Σx²), so `sum_sq` is Σ over events of value², which is Σ
 *   over users of their value squared exactly when a user fires `event` at
 *   most once in the window;
 * - funnel (proportion, `funnel`): `GET /api/2/funnels` with the steps
 *   `exposure_event`, the `funnel` events, then `event`, one request per arm (a
 *   segment on the experiment and that arm): units are `cumulativeRaw[0]`,
 *   the users who entered the first step (the exposure), and the
 *   conversions `cumulativeRaw` of the last step. A funnel's group-by
 *   response has no documented group label, hence one request per arm.
 *
 * Batches (`fetchBatchAggregates`, segmentation only, unless `batch: false`):
 * the same requests for many experiments at once, grouped by both user
 * properties (`g` the experiment, `g2` the arm) and filtered by a segment to
 * the batch's keys and arms; experiments whose windows start on the same day
 * share a request (unique counts depend on the date range). A group's label
 * names both values: as two items after the event index (`[0, "<key>",
 * "<arm>"]`) or as one text joining them with `"; "`; a label that names no
 * (experiment, arm) of the request fails the batch with `bad_response`
 * (then `batch: false` reads one experiment per request, by the arm alone).
 *
 * Dates: the API takes whole days (`start`, `end`, YYYYMMDD) in the project's
 * time zone (the page: "The Dashboard REST API time zone is the same as your
 * Amplitude project's time zone"). A window (from, to] is read as the days
 * from the date of `from` to the date of the window's last instant (to −
 * 1 ms), both in `project_timezone`; the read covers those days whole.
 *
 * Every read spends its query cost from the project's budget before sending
 * (see `amplitudeQueryCost` and {@link amplitudePollCost}).
 */
import { guardedFetch } from "@outcome-runtime/netguard";
import { assertWindow, checkArmAggregates, checkSeries, type RawArmRow } from "../boundary-checks";
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
import {
  AMPLITUDE_REGION_URLS,
  amplitudeBudgetLimits,
  amplitudeQueryCost,
  type DashboardApiSettings,
  dashboardGet,
  type QueryCostInput,
  spendCost,
} from "./dashboard-api-client";

const FIELDS = [
  "project_id",
  ...credentialFields("amplitude"),
  "event",
  "funnel",
  "exposure_event",
  "experiment_property",
  "arm_property",
  "value_property",
  "value_squared_property",
  "funnel_mode",
  "conversion_window",
  "project_timezone",
  "batch",
  "region",
  "api_url",
  "timeout",
] as const;

const DEFAULTS = Object.freeze({
  experiment_property: "experiment",
  arm_property: "arm",
  project_timezone: "UTC",
  funnel_mode: "ordered" as const,
  region: "us" as const,
  timeoutSeconds: 60,
});

const SEGMENTATION = "/api/2/events/segmentation";
const FUNNELS = "/api/2/funnels";
const EVENTS_LIST = "/api/2/events/list";

/** Amplitude's built-in user properties, sent without the `gp:` prefix (the page's "Shared query parameters"). */
const BUILT_IN_PROPERTIES = new Set([
  "version",
  "country",
  "city",
  "region",
  "DMA",
  "language",
  "platform",
  "os",
  "device",
  "device_type",
  "start_version",
  "paying",
]);

/** "The number of Group By values returned ... The limit is 1000." */
const AMPLITUDE_MAX_GROUPS = 1000;

/** Experiment keys per batched request: keeps the segment (in the URL) a few kilobytes. */
const AMPLITUDE_BATCH_MAX_KEYS = 100;

/** Joins the two values of a label of two group-bys given as one text. */
const LABEL_SEPARATOR = "; ";

/** Funnel steps, the exposure and the conversion included (a long funnel is costly: 2 per step and day). */
const MAX_FUNNEL_STEPS = 9;

/**
 * The window length a poll's cost is planned for, in days: a read's cost
 * grows with its days (a cumulative read spans the experiment so far), so
 * {@link amplitudePollCost} plans for an experiment four weeks in.
 */
export const AMPLITUDE_PLANNING_WINDOW_DAYS = 28;

/** Query cost an hour planned for polling, out of the budget's 12,000: the rest is left for retries and people. */
export const AMPLITUDE_PLANNED_COST_PER_HOUR = 9600;

interface AmplitudeSettings {
  api: DashboardApiSettings;
  event: string;
  funnel: readonly string[] | undefined;
  exposureEvent: string;
  experimentProperty: string;
  armProperty: string;
  valueProperty: string | undefined;
  valueSquaredProperty: string | undefined;
  funnelMode: "ordered" | "unordered" | "sequential";
  conversionWindowSeconds: number | undefined;
  timeZone: string;
  batch: boolean;
  region: "us" | "eu";
  metricKind: "proportion" | "mean";
}

/**
 * Creates an `amplitude` connector. The API key and secret key arrive resolved
 * in `context.credentials` (`api_key`, `secret_key`).
 *
 * @throws ConnectorError `invalid_config` naming the field, the value and the fix;
 *   `source_refused` for an `api_url` that is not Amplitude's nor allowed by the operator
 */
export function createAmplitudeConnector(config: ConnectorConfig, context: ConnectorContext): SignalConnector {
  if (context.metricKind === "ratio") {
    throw new ConnectorError(
      "invalid_config",
      "amplitude connector: the metric is a ratio, whose delta-method variance needs each unit's numerator and denominator (den_sum, den_sum_sq, num_den_sum), which Amplitude's Dashboard REST API does not give; read it with a warehouse connector, or make it a mean of the numerator per unit",
      { details: { field: "type", value: "amplitude", kind: "ratio" } },
    );
  }
  const reader = new ConfigReader(config, FIELDS);
  const projectId = readProjectId(reader);
  const apiKey = credentialValue(
    context.credentials,
    readCredentialRef(reader, "api_key", "the project's API key"),
    "amplitude",
  );
  const secretKey = credentialValue(
    context.credentials,
    readCredentialRef(reader, "secret_key", "the project's secret key"),
    "amplitude",
  );
  const event = reader.string("event", "name the Amplitude event that counts as a success or carries the value");
  const funnel = readFunnel(reader);
  const valueProperty = reader.optionalString("value_property", "name the numeric event property to average");
  const valueSquaredProperty = reader.optionalString(
    "value_squared_property",
    "name the numeric event property holding the value squared",
  );
  if (context.metricKind === "mean") {
    if (funnel !== undefined) {
      throw reader.invalid(
        "funnel",
        "is set, but the metric is a mean",
        "a funnel counts users: use kind: proportion, or leave funnel out and average value_property of event",
      );
    }
    if (valueProperty === undefined) {
      throw reader.invalid(
        "value_property",
        "is missing, but the metric is a mean",
        "name the numeric property of the event that holds each value (e.g. amount)",
      );
    }
    if (valueSquaredProperty === undefined) {
      throw reader.invalid(
        "value_squared_property",
        "is missing, but the metric is a mean",
        "send the value squared with each event as its own event property (e.g. amount_sq = amount * amount) and name it here: Amplitude's sums and formulas have no per-event square, and the variance needs Σ value²",
      );
    }
  } else if (valueProperty !== undefined || valueSquaredProperty !== undefined) {
    throw reader.invalid(
      valueProperty === undefined ? "value_squared_property" : "value_property",
      "is set, but the metric is a proportion",
      "remove it, or declare the metric kind: mean",
    );
  }
  const timeZone =
    reader.optionalString("project_timezone", "write the Amplitude project's time zone, e.g. America/Los_Angeles") ??
    DEFAULTS.project_timezone;
  if (!validTimeZone(timeZone)) {
    throw reader.invalid(
      "project_timezone",
      `${show(timeZone)} is not an IANA time zone`,
      "write the time zone shown in the Amplitude project's settings, e.g. UTC or America/Los_Angeles",
      { value: timeZone },
    );
  }
  const batchRaw = reader.raw("batch");
  if (batchRaw !== undefined && typeof batchRaw !== "boolean") {
    throw reader.invalid(
      "batch",
      `${show(batchRaw)} is not true or false`,
      "write batch: false to read one experiment per request",
      {
        value: batchRaw,
      },
    );
  }
  const conversionWindow = reader.durationSeconds("conversion_window");
  if (conversionWindow !== undefined && funnel === undefined) {
    throw reader.invalid("conversion_window", "is set, but there is no funnel", "remove it, or give funnel");
  }
  const funnelMode = reader.oneOf("funnel_mode", ["ordered", "unordered", "sequential"] as const, DEFAULTS.funnel_mode);
  const region = reader.oneOf("region", ["us", "eu"] as const, DEFAULTS.region);
  const apiUrl = reader.optionalString("api_url", "write https://amplitude.com or https://analytics.eu.amplitude.com");
  const baseUrl =
    apiUrl === undefined
      ? AMPLITUDE_REGION_URLS[region]
      : vendorApiUrl(
          reader,
          "api_url",
          apiUrl,
          Object.values(AMPLITUDE_REGION_URLS),
          context.allowedApiUrls?.amplitude,
        );
  const settings: AmplitudeSettings = {
    api: {
      baseUrl,
      projectId,
      apiKey,
      secretKey,
      timeoutMs: reader.durationSeconds("timeout", DEFAULTS.timeoutSeconds) * 1000,
      // Held to the outbound policy, and to the API's origin: a redirect elsewhere is refused, so the keys stay with Amplitude.
      fetch: context.fetch ?? guardedFetch({ policy: context.outboundPolicy, origins: [new URL(baseUrl).origin] }),
    },
    event,
    funnel,
    exposureEvent: reader.string("exposure_event", "name the event fired when a user is exposed to an arm"),
    experimentProperty:
      reader.optionalString("experiment_property", "name the user property holding the experiment key") ??
      DEFAULTS.experiment_property,
    armProperty:
      reader.optionalString("arm_property", "name the user property holding the arm") ?? DEFAULTS.arm_property,
    valueProperty,
    valueSquaredProperty,
    funnelMode,
    conversionWindowSeconds: conversionWindow,
    timeZone,
    batch: batchRaw !== false,
    region,
    metricKind: context.metricKind,
  };
  return new AmplitudeConnector(settings);
}

function readProjectId(reader: ConfigReader): string {
  const value = reader.raw("project_id");
  if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) return String(value);
  if (typeof value === "string" && /^[0-9]+$/u.test(value.trim())) return value.trim();
  throw reader.invalid(
    "project_id",
    value === undefined ? "is missing" : `${show(value)} is not a project id`,
    "write the numeric project id shown in Amplitude's project settings (it names the query budget the project's polls share)",
    value === undefined ? {} : { value },
  );
}

function readFunnel(reader: ConfigReader): string[] | undefined {
  if (!reader.has("funnel")) return undefined;
  const value = reader.raw("funnel");
  if (
    !Array.isArray(value) ||
    value.length > MAX_FUNNEL_STEPS - 2 ||
    value.some((step) => typeof step !== "string" || step.trim() === "")
  ) {
    throw reader.invalid(
      "funnel",
      `${show(value)} is not a list of at most ${MAX_FUNNEL_STEPS - 2} event names`,
      "list the steps between exposure_event and event, in order (funnel: [] for exposure_event then event)",
      { value },
    );
  }
  return value as string[];
}

function validTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Whether `amplitude` settings read experiments in batches: a segmentation (no `funnel`), unless `batch: false`. */
export function amplitudeReadsInBatches(config: ConnectorConfig): boolean {
  return config.funnel === undefined && config.batch !== false;
}

/** The shape of the requests one read sends, for its cost. */
function requestCosts(
  s: Pick<AmplitudeSettings, "funnel" | "metricKind">,
  form: "batched" | "single",
  days: number,
  arms: number,
): QueryCostInput[] {
  if (s.funnel !== undefined) {
    // One request per arm: segment experiment = key and arm = the arm, no group-by.
    const steps = 2 + s.funnel.length;
    return Array.from({ length: arms }, () => ({
      days,
      segmentFilters: 2,
      groupBys: 0,
      events: steps,
      eventGroupBys: 0,
      chart: "funnel" as const,
    }));
  }
  const groupBys = form === "batched" ? 2 : 1;
  const uniques = { days, segmentFilters: 2, groupBys, events: 1, eventGroupBys: 0, chart: "segmentation" as const };
  if (s.metricKind === "proportion") return [uniques, uniques];
  const sums = { ...uniques, eventGroupBys: 1 };
  return [uniques, sums, sums];
}

function totalCost(costs: readonly QueryCostInput[]): number {
  return costs.reduce((total, q) => total + amplitudeQueryCost(q), 0);
}

/**
 * What one poll round of `amplitude` settings costs the project's budget, in
 * Amplitude's query cost (the budget counts cost, not requests: its hourly
 * limit is the documented 1000 cost per five minutes, 12,000 an hour),
 * planned for a window of {@link AMPLITUDE_PLANNING_WINDOW_DAYS} days.
 * Batched: 2 (proportion) or 3 (mean) requests per
 * {@link AMPLITUDE_BATCH_MAX_KEYS} experiments; otherwise those per
 * experiment, or one funnel request per arm.
 *
 * @returns null for settings without a numeric `project_id` (they are refused when the connector is created)
 */
export function amplitudePollCost(config: ConnectorConfig): PollCost | null {
  const projectId =
    typeof config.project_id === "number"
      ? String(config.project_id)
      : typeof config.project_id === "string"
        ? config.project_id.trim()
        : "";
  if (!/^[0-9]+$/u.test(projectId)) return null;
  const region = config.region === "eu" ? "eu" : "us";
  const baseUrl =
    (typeof config.api_url === "string" ? normalizeApiUrl(config.api_url) : undefined) ?? AMPLITUDE_REGION_URLS[region];
  const shape = {
    funnel: Array.isArray(config.funnel) ? (config.funnel as string[]) : undefined,
    metricKind: typeof config.value_property === "string" ? ("mean" as const) : ("proportion" as const),
  };
  const batched = amplitudeReadsInBatches(config);
  return {
    limits: amplitudeBudgetLimits(baseUrl, projectId),
    plannedPerHour: AMPLITUDE_PLANNED_COST_PER_HOUR,
    requestsPerRound(experiments: number, arms: number): number {
      const count = Math.max(1, Math.ceil(experiments));
      const armCount = Math.max(1, Math.ceil(arms));
      const days = AMPLITUDE_PLANNING_WINDOW_DAYS;
      if (batched) {
        return Math.ceil(count / AMPLITUDE_BATCH_MAX_KEYS) * totalCost(requestCosts(shape, "batched", days, armCount));
      }
      return count * totalCost(requestCosts(shape, "single", days, armCount));
    },
  };
}

/** The user property's name as the API takes it: `gp:<name>` for a custom one. */
function userProperty(name: string): string {
  return name.startsWith("gp:") || BUILT_IN_PROPERTIES.has(name) ? name : `gp:${name}`;
}

interface DateRange {
  /** YYYYMMDD, the project's time zone. */
  readonly start: string;
  readonly end: string;
  readonly days: number;
}

/** The date (YYYY-MM-DD) of `instant` in `timeZone`. */
function dateIn(instant: Date, timeZone: string): string {
  // en-CA formats a date as YYYY-MM-DD.
  return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(
    instant,
  );
}

/**
 * The whole days, in the project's time zone, that cover the window (from, to]:
 * from the date of `from` to the date of the window's last instant (to − 1 ms).
 *
 * @example
 * // from 2026-11-01T00:00Z, to 2026-11-08T00:00Z, UTC: 20261101 to 20261107 (7 days);
 * // America/Los_Angeles: 20261031 to 20261107 (8 days: 2026-11-01T00:00Z is still Oct 31 there).
 */
export function amplitudeDateRange(from: Date, to: Date, timeZone: string): DateRange {
  const first = dateIn(from, timeZone);
  const lastInstant = new Date(Math.max(from.getTime(), to.getTime() - 1));
  const last = dateIn(lastInstant, timeZone);
  const days = Math.round((Date.parse(`${last}T00:00:00Z`) - Date.parse(`${first}T00:00:00Z`)) / 86_400_000) + 1;
  return { start: first.replaceAll("-", ""), end: last.replaceAll("-", ""), days };
}

/** The instant a project-time-zone date (YYYY-MM-DD) starts. */
function startOfDay(date: string, timeZone: string): Date {
  const utc = Date.parse(`${date}T00:00:00Z`);
  // The zone's offset at that moment, read back from its wall clock; applied twice for days a DST change starts.
  let guess = utc;
  for (let i = 0; i < 2; i++) {
    const parts = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    }).formatToParts(new Date(guess));
    const get = (type: string): number => Number(parts.find((p) => p.type === type)?.value);
    const wall = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
    guess = utc - (wall - guess);
  }
  return new Date(guess);
}

/** One group of a segmentation answer: its label's values and the window's total, or why it cannot be read. */
interface Group {
  readonly values: readonly string[];
  readonly total: unknown;
  readonly index: number;
}

class AmplitudeConnector implements SignalConnector {
  readonly type = "amplitude";

  constructor(private readonly settings: AmplitudeSettings) {}

  describe(): string {
    const s = this.settings;
    const what =
      s.funnel !== undefined
        ? `funnel ${[s.exposureEvent, ...s.funnel, s.event].map((e) => JSON.stringify(e)).join(" → ")}`
        : s.valueProperty === undefined
          ? `unique users of ${JSON.stringify(s.event)}`
          : `sum of ${JSON.stringify(s.valueProperty)} of ${JSON.stringify(s.event)}`;
    const host = s.api.baseUrl === AMPLITUDE_REGION_URLS[s.region] ? s.region : new URL(s.api.baseUrl).host;
    return `amplitude project ${s.api.projectId} (${host}, ${s.timeZone}): ${what}, units = unique users of ${JSON.stringify(s.exposureEvent)} by user properties ${JSON.stringify(s.experimentProperty)} and ${JSON.stringify(s.armProperty)}`;
  }

  /**
   * Checks that the events the settings name are in the project's event list
   * (`GET /api/2/events/list`, cost 1): a misspelt event would otherwise read
   * as no data.
   *
   * @throws ConnectorError `query_failed` naming the events that are missing; the client's errors
   */
  async check(signal?: AbortSignal): Promise<void> {
    const s = this.settings;
    spendCost(s.api, 1);
    const body = await dashboardGet(s.api, EVENTS_LIST, [], signal);
    const data = isRecord(body) ? body.data : undefined;
    if (!Array.isArray(data)) {
      throw new ConnectorError(
        "bad_response",
        `amplitude ${EVENTS_LIST}: the answer has no data list (got ${show(body)}); check api_url`,
        { details: { path: EVENTS_LIST, field: "data" } },
      );
    }
    const known = new Set(
      data
        .filter((e) => isRecord(e) && e.deleted !== true && typeof e.value === "string")
        .map((e) => (e as { value: string }).value),
    );
    const named: [string, string][] = [
      ["exposure_event", s.exposureEvent],
      ["event", s.event],
      ...(s.funnel ?? []).map((step, i): [string, string] => [`funnel[${i}]`, step]),
    ];
    const missing = named.filter(([, name]) => !known.has(name));
    if (missing.length > 0) {
      throw new ConnectorError(
        "query_failed",
        `amplitude: ${missing.map(([field, name]) => `${field} ${JSON.stringify(name)}`).join(", ")} ${missing.length === 1 ? "is" : "are"} not among project ${s.api.projectId}'s events (deleted or hidden events are not listed either); check the spelling against Amplitude's event list`,
        {
          details: {
            field: (missing[0]?.[0] ?? "event").replace(/\[\d+\]$/u, ""),
            missing: missing.map(([field, value]) => ({ field, value })),
          },
        },
      );
    }
  }

  async fetchArmAggregates(window: ExperimentWindow, signal?: AbortSignal): Promise<ArmAggregate[]> {
    assertWindow(window);
    const s = this.settings;
    const range = amplitudeDateRange(window.from, window.to, s.timeZone);
    spendCost(s.api, totalCost(requestCosts(s, "single", range.days, window.arms.length)));
    return linked(signal, (poll) =>
      s.funnel === undefined
        ? this.segmentationRead(window, range, poll)
        : this.funnelRead(window, s.funnel, range, poll),
    );
  }

  /**
   * Present for a segmentation unless `batch: false`: see {@link batchRead}.
   * A funnel reads one experiment (and one arm) per request.
   */
  get fetchBatchAggregates(): SignalConnector["fetchBatchAggregates"] {
    return this.settings.funnel === undefined && this.settings.batch
      ? (window, signal) => this.batchRead(window, signal)
      : undefined;
  }

  private segment(keys: readonly string[], arms: readonly string[]): string {
    const s = this.settings;
    return JSON.stringify([
      { prop: userProperty(s.experimentProperty), op: "is", values: keys },
      { prop: userProperty(s.armProperty), op: "is", values: arms },
    ]);
  }

  /** The segmentation requests of a read: [metric, e] for units, then the metric's sums or conversions. */
  private segmentationEvents(): { field: "units" | "sum" | "sum_sq"; e: unknown; m: string }[] {
    const s = this.settings;
    const units = { field: "units" as const, e: { event_type: s.exposureEvent }, m: "uniques" };
    if (s.valueProperty === undefined || s.valueSquaredProperty === undefined) {
      return [units, { field: "sum", e: { event_type: s.event }, m: "uniques" }];
    }
    const sums = (property: string) => ({
      event_type: s.event,
      group_by: [{ type: "event", value: property }],
    });
    return [
      units,
      { field: "sum", e: sums(s.valueProperty), m: "sums" },
      { field: "sum_sq", e: sums(s.valueSquaredProperty), m: "sums" },
    ];
  }

  private async segmentationRead(
    window: ExperimentWindow,
    range: DateRange,
    signal: AbortSignal,
  ): Promise<ArmAggregate[]> {
    const s = this.settings;
    const segment = this.segment([window.experimentKey], window.arms);
    const limit = Math.min(AMPLITUDE_MAX_GROUPS, window.arms.length);
    const answers = await Promise.all(
      this.segmentationEvents().map(async (q) => ({
        field: q.field,
        groups: await this.segmentation(q.e, q.m, range, segment, [userProperty(s.armProperty)], limit, signal),
      })),
    );
    const rows = new Map<string, RawArmRow>();
    const seen = new Map<string, Set<string>>();
    for (const { field, groups } of answers) {
      for (const group of groups) {
        const arm = group.values.join(LABEL_SEPARATOR);
        if (group.values.length !== 1) {
          throw labelError(group, `one value (the arm), grouped by ${JSON.stringify(s.armProperty)}`);
        }
        const fields = seen.get(arm) ?? new Set<string>();
        if (fields.has(field)) throw repeatedLabel(arm, field);
        fields.add(field);
        seen.set(arm, fields);
        const row = rows.get(arm) ?? emptyRow(arm);
        row[field] = group.total;
        if (s.metricKind === "proportion" && field === "sum") row.sum_sq = group.total;
        rows.set(arm, row);
      }
    }
    return checkArmAggregates([...rows.values()], window, s.metricKind, "amplitude");
  }

  /**
   * The experiments of `window` in request groups (same first day, at most
   * {@link AMPLITUDE_BATCH_MAX_KEYS} keys and {@link AMPLITUDE_MAX_GROUPS}
   * (experiment, arm) pairs, labels that cannot be confused), each 2
   * (proportion) or 3 (mean) segmentation requests grouped by experiment and
   * arm. The whole batch's cost is spent first. Each experiment's rows are
   * checked as `fetchArmAggregates` checks them; an error there is that
   * experiment's value.
   *
   * @throws ConnectorError when a request fails (the others are cancelled),
   *   when the budget cannot pay for the batch (`rate_limited`, nothing sent), or
   *   `bad_response` when a group's label names no experiment the request asked for
   */
  private async batchRead(window: BatchWindow, signal: AbortSignal | undefined): Promise<BatchAggregates> {
    for (const e of window.experiments) assertWindow({ from: e.from, to: window.to, arms: e.arms });
    if (window.experiments.length === 0) return new Map();
    const s = this.settings;
    const groups = planBatch(window, s.timeZone);
    spendCost(
      s.api,
      groups.reduce((total, g) => total + totalCost(requestCosts(s, "batched", g.range.days, 1)), 0),
    );
    const breakdown = [userProperty(s.experimentProperty), userProperty(s.armProperty)];
    const answered = await linked(signal, (poll) =>
      Promise.all(
        groups.map(async (group) => {
          const segment = this.segment(
            group.experiments.map((e) => e.experimentKey),
            [...new Set(group.experiments.flatMap((e) => e.arms))],
          );
          const limit = Math.min(AMPLITUDE_MAX_GROUPS, group.limit);
          const answers = await Promise.all(
            this.segmentationEvents().map(async (q) => ({
              field: q.field,
              groups: await this.segmentation(q.e, q.m, group.range, segment, breakdown, limit, poll),
            })),
          );
          return { group, answers };
        }),
      ),
    );
    const result: BatchAggregates = new Map();
    for (const { group, answers } of answered) {
      const rows = new Map<string, Map<string, RawArmRow>>(group.experiments.map((e) => [e.experimentKey, new Map()]));
      const failed = new Map<string, ConnectorError>();
      const seen = new Set<string>();
      for (const { field, groups } of answers) {
        for (const g of groups) {
          const { key, arm } = attribute(g, group);
          const id = `${field}\u0000${key}\u0000${arm}`;
          if (seen.has(id)) {
            if (!failed.has(key)) failed.set(key, repeatedLabel(`${key}${LABEL_SEPARATOR}${arm}`, field));
            continue;
          }
          seen.add(id);
          const byArm = rows.get(key);
          if (byArm === undefined) continue;
          const row = byArm.get(arm) ?? emptyRow(arm);
          row[field] = g.total;
          if (s.metricKind === "proportion" && field === "sum") row.sum_sq = g.total;
          byArm.set(arm, row);
        }
      }
      for (const e of group.experiments) {
        const error = failed.get(e.experimentKey);
        if (error !== undefined) {
          result.set(e.experimentKey, error);
          continue;
        }
        try {
          result.set(
            e.experimentKey,
            checkArmAggregates(
              [...(rows.get(e.experimentKey)?.values() ?? [])],
              { experimentKey: e.experimentKey, arms: e.arms, from: e.from, to: window.to },
              s.metricKind,
              "amplitude",
            ),
          );
        } catch (error) {
          if (!(error instanceof ConnectorError)) throw error;
          result.set(e.experimentKey, error);
        }
      }
    }
    return result;
  }

  /**
   * One funnel request per arm (segment: the experiment and that arm): units
   * are the users who entered the first step (the exposure), the conversions
   * those who completed the last.
   */
  private async funnelRead(
    window: ExperimentWindow,
    funnel: readonly string[],
    range: DateRange,
    signal: AbortSignal,
  ): Promise<ArmAggregate[]> {
    const s = this.settings;
    const steps = [s.exposureEvent, ...funnel, s.event];
    const perArm = await Promise.all(
      window.arms.map(async (arm) => {
        const params: [string, string][] = [
          ...steps.map((step): [string, string] => ["e", JSON.stringify({ event_type: step })]),
          ["start", range.start],
          ["end", range.end],
          ["mode", s.funnelMode],
          ["n", "active"],
          ["s", this.segment([window.experimentKey], [arm])],
        ];
        if (s.conversionWindowSeconds !== undefined) params.push(["cs", String(s.conversionWindowSeconds)]);
        const body = await dashboardGet(s.api, FUNNELS, params, signal);
        return { arm, counts: funnelCounts(body, steps.length, arm) };
      }),
    );
    const rows: RawArmRow[] = [];
    for (const { arm, counts } of perArm) {
      if (counts === null) continue;
      rows.push({
        arm,
        units: counts.entered,
        sum: counts.completed,
        sum_sq: counts.completed,
        location: `arm ${JSON.stringify(arm)}`,
      });
    }
    return checkArmAggregates(rows, window, s.metricKind, "amplitude");
  }

  /**
   * The outcome's own daily series over the whole project: a mean's daily
   * average of `value_property` (`m=value_avg`); a proportion's daily unique
   * users of `event` over those of `exposure_event` (`m=formula`,
   * `UNIQUES(B)/UNIQUES(A)`). Each day's point is at the start of that day in
   * the project's time zone.
   *
   * @throws ConnectorError `unsupported` for a funnel
   */
  async fetchOutcomeSeries(window: SeriesWindow, signal?: AbortSignal): Promise<SeriesPoint[]> {
    assertWindow(window);
    const s = this.settings;
    if (s.funnel !== undefined) {
      throw new ConnectorError(
        "unsupported",
        "amplitude connector: the outcome series of a funnel is not read; give the outcome an event (segmentation) connector, or a warehouse series_query",
        { details: { field: "funnel" } },
      );
    }
    const range = amplitudeDateRange(window.from, window.to, s.timeZone);
    const params: [string, string][] = [
      ["start", range.start],
      ["end", range.end],
      ["i", "1"],
    ];
    if (s.valueProperty !== undefined) {
      spendCost(
        s.api,
        amplitudeQueryCost({
          days: range.days,
          segmentFilters: 0,
          groupBys: 0,
          events: 1,
          eventGroupBys: 1,
          chart: "segmentation",
        }),
      );
      params.push(
        ["e", JSON.stringify({ event_type: s.event, group_by: [{ type: "event", value: s.valueProperty }] })],
        ["m", "value_avg"],
      );
    } else {
      spendCost(
        s.api,
        amplitudeQueryCost({
          days: range.days,
          segmentFilters: 0,
          groupBys: 0,
          events: 2,
          eventGroupBys: 0,
          chart: "segmentation",
        }),
      );
      params.push(
        ["e", JSON.stringify({ event_type: s.exposureEvent })],
        ["e2", JSON.stringify({ event_type: s.event })],
        ["m", "formula"],
        ["formula", "UNIQUES(B)/UNIQUES(A)"],
      );
    }
    const body = await dashboardGet(s.api, SEGMENTATION, params, signal);
    const data = isRecord(body) ? body.data : undefined;
    const series = isRecord(data) ? data.series : undefined;
    const xValues = isRecord(data) ? data.xValues : undefined;
    if (!Array.isArray(series) || !Array.isArray(xValues) || (series.length > 0 && !Array.isArray(series[0]))) {
      throw new ConnectorError(
        "bad_response",
        `amplitude ${SEGMENTATION}: the answer has no data.series and data.xValues lists (got ${show(body)}); check api_url`,
        { details: { path: SEGMENTATION, field: "data.series" } },
      );
    }
    const values = (series[0] ?? []) as unknown[];
    const rows = xValues.map((date, i) => ({
      ts:
        typeof date === "string" && /^\d{4}-\d{2}-\d{2}$/u.test(date)
          ? startOfDay(date, s.timeZone).toISOString()
          : date,
      value: values[i],
      location: `day ${show(date)}`,
    }));
    return checkSeries(rows, window, `amplitude ${SEGMENTATION}`);
  }

  async close(): Promise<void> {}

  /**
   * One segmentation request: per group, its label's values (the event index
   * dropped) and the window's total from `seriesCollapsed`.
   *
   * @throws ConnectorError `bad_response` when the answer lacks `data.seriesLabels` or `data.seriesCollapsed`
   */
  private async segmentation(
    e: unknown,
    m: string,
    range: DateRange,
    segment: string,
    groupBy: readonly string[],
    limit: number,
    signal: AbortSignal,
  ): Promise<Group[]> {
    const params: [string, string][] = [
      ["e", JSON.stringify(e)],
      ["m", m],
      ["start", range.start],
      ["end", range.end],
      // Daily intervals reach back 365 days; the window's total (seriesCollapsed) is the same in any interval.
      ["i", range.days > 365 ? "30" : "1"],
      ["s", segment],
      ["g", groupBy[0] ?? ""],
      ...(groupBy[1] === undefined ? [] : [["g2", groupBy[1]] as [string, string]]),
      ["limit", String(Math.max(1, limit))],
    ];
    const body = await dashboardGet(this.settings.api, SEGMENTATION, params, signal);
    const data = isRecord(body) ? body.data : undefined;
    const labels = isRecord(data) ? data.seriesLabels : undefined;
    const collapsed = isRecord(data) ? data.seriesCollapsed : undefined;
    if (!Array.isArray(labels) || !Array.isArray(collapsed) || labels.length !== collapsed.length) {
      throw new ConnectorError(
        "bad_response",
        `amplitude ${SEGMENTATION}: the answer has no data.seriesLabels and data.seriesCollapsed lists of the same length (got ${show(body)}); check api_url`,
        { details: { path: SEGMENTATION, field: "data.seriesCollapsed" } },
      );
    }
    return labels.map((label, index) => ({
      values: labelValues(label, index),
      total: collapsedTotal(collapsed[index]),
      index,
    }));
  }
}

/** A row of an arm with nothing read yet: a count missing from an answer is 0 (Amplitude leaves out empty groups). */
function emptyRow(arm: string): RawArmRow {
  return { arm, units: 0, sum: 0, sum_sq: 0, location: `arm ${JSON.stringify(arm)}` };
}

/**
 * A label's values: a text (`"United States"`, as the page shows), or a list
 * whose first item is the event's index (`[0, "United States"]`) then one
 * value per group-by. A value that is not text is kept as its JSON text, so
 * it matches no arm and is reported.
 */
function labelValues(label: unknown, index: number): string[] {
  if (typeof label === "string") return [label];
  if (Array.isArray(label)) {
    const items = typeof label[0] === "number" ? label.slice(1) : label;
    return items.map((item) => (typeof item === "string" ? item : JSON.stringify(item)));
  }
  return [`(label ${index}: ${show(label)})`];
}

/** The window's total of a group: `seriesCollapsed[i]` is `[{ "value": n }]`. */
function collapsedTotal(entry: unknown): unknown {
  if (Array.isArray(entry) && entry.length === 1 && isRecord(entry[0])) return entry[0].value;
  if (isRecord(entry)) return entry.value;
  return entry === undefined ? null : entry;
}

function labelError(group: Group, expected: string): ConnectorError {
  return new ConnectorError(
    "bad_response",
    `amplitude ${SEGMENTATION}: group ${group.index} is labelled ${show(group.values)}, where the request asked for ${expected}; check experiment_property, arm_property and api_url`,
    { details: { path: SEGMENTATION, field: `data.seriesLabels[${group.index}]`, label: group.values } },
  );
}

function repeatedLabel(label: string, field: string): ConnectorError {
  return new ConnectorError(
    "bad_response",
    `amplitude ${SEGMENTATION}: the group ${JSON.stringify(label)} appears twice in one answer (${field === "units" ? "exposed users" : field === "sum" ? "the metric" : "Σ value²"}), two totals where there is one; check experiment_property, arm_property and api_url`,
    { details: { path: SEGMENTATION, label, field } },
  );
}

/** Users who entered the first step and completed the last, or null for an arm the funnel has no users of. */
function funnelCounts(body: unknown, steps: number, arm: string): { entered: unknown; completed: unknown } | null {
  const data = isRecord(body) ? body.data : undefined;
  if (!Array.isArray(data)) {
    throw new ConnectorError(
      "bad_response",
      `amplitude ${FUNNELS}: the answer for arm ${JSON.stringify(arm)} has no data list (got ${show(body)}); check api_url`,
      { details: { path: FUNNELS, arm, field: "data" } },
    );
  }
  if (data.length === 0) return null;
  if (data.length > 1) {
    throw new ConnectorError(
      "bad_response",
      `amplitude ${FUNNELS}: the answer for arm ${JSON.stringify(arm)} has ${data.length} groups where one segment was asked for`,
      { details: { path: FUNNELS, arm, field: "data" } },
    );
  }
  const raw = isRecord(data[0]) ? data[0].cumulativeRaw : undefined;
  if (!Array.isArray(raw) || raw.length !== steps) {
    throw new ConnectorError(
      "bad_response",
      `amplitude ${FUNNELS}: data[0].cumulativeRaw for arm ${JSON.stringify(arm)} is ${show(raw)}, not ${steps} counts (one per step)`,
      { details: { path: FUNNELS, arm, field: "data[0].cumulativeRaw" } },
    );
  }
  if (raw[0] === 0 && raw.at(-1) === 0) return null;
  return { entered: raw[0], completed: raw.at(-1) };
}

/** One batched request group: experiments sharing a date range. */
interface BatchGroup {
  readonly experiments: BatchWindow["experiments"][number][];
  readonly range: DateRange;
  /** Groups the answer may have: keys × the union of their arms. */
  readonly limit: number;
  /** Joined label ("<key>; <arm>") → the (experiment, arm) it stands for. */
  readonly joined: ReadonlyMap<string, { key: string; arm: string }>;
}

/**
 * Splits a batch into request groups: experiments whose windows start on the
 * same day, at most {@link AMPLITUDE_BATCH_MAX_KEYS} keys and
 * {@link AMPLITUDE_MAX_GROUPS} (key, arm) combinations, and no two
 * (experiment, arm) pairs whose joined labels are the same text.
 */
function planBatch(window: BatchWindow, timeZone: string): BatchGroup[] {
  const byRange = new Map<string, { range: DateRange; experiments: BatchWindow["experiments"][number][] }>();
  for (const e of window.experiments) {
    const range = amplitudeDateRange(e.from, window.to, timeZone);
    const entry = byRange.get(range.start) ?? { range, experiments: [] };
    entry.experiments.push(e);
    byRange.set(range.start, entry);
  }
  const groups: BatchGroup[] = [];
  for (const { range, experiments } of byRange.values()) {
    let current: BatchWindow["experiments"][number][] = [];
    let arms = new Set<string>();
    let joined = new Map<string, { key: string; arm: string }>();
    const close = (): void => {
      if (current.length > 0) groups.push({ experiments: current, range, limit: current.length * arms.size, joined });
      current = [];
      arms = new Set();
      joined = new Map();
    };
    for (const e of experiments) {
      const mine = e.arms.map(
        (arm) => [`${e.experimentKey}${LABEL_SEPARATOR}${arm}`, { key: e.experimentKey, arm }] as const,
      );
      const armsAfter = new Set([...arms, ...e.arms]);
      const fits =
        current.length < AMPLITUDE_BATCH_MAX_KEYS &&
        (current.length + 1) * armsAfter.size <= AMPLITUDE_MAX_GROUPS &&
        mine.every(([name]) => !joined.has(name));
      if (!fits) close();
      current.push(e);
      for (const arm of e.arms) arms.add(arm);
      for (const [name, pair] of mine) joined.set(name, pair);
    }
    close();
  }
  return groups;
}

/**
 * The (experiment, arm) a batched group stands for: its label's two values, or
 * one text joining them with `"; "`. An arm the request did not ask for (of an
 * experiment it did) is kept, and fails that experiment's check.
 *
 * @throws ConnectorError `bad_response` when the label names no experiment of the request
 */
function attribute(group: Group, batch: BatchGroup): { key: string; arm: string } {
  const keys = new Set(batch.experiments.map((e) => e.experimentKey));
  if (group.values.length === 2) {
    const [key, arm] = group.values as [string, string];
    if (keys.has(key)) return { key, arm };
  } else if (group.values.length === 1) {
    const text = group.values[0] ?? "";
    const asked = batch.joined.get(text);
    if (asked !== undefined) return asked;
    const owner = [...keys]
      .filter((key) => text.startsWith(`${key}${LABEL_SEPARATOR}`))
      .sort((a, b) => b.length - a.length)[0];
    if (owner !== undefined) return { key: owner, arm: text.slice(owner.length + LABEL_SEPARATOR.length) };
  }
  throw new ConnectorError(
    "bad_response",
    `amplitude ${SEGMENTATION}: group ${group.index} is labelled ${show(group.values)}, which names no experiment of the ${keys.size} this request asked for (grouped by experiment, then arm); check experiment_property and arm_property, or set batch: false to read one experiment per request`,
    { details: { path: SEGMENTATION, field: `data.seriesLabels[${group.index}]`, label: group.values } },
  );
}
