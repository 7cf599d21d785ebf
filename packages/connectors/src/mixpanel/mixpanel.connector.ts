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
 * Mixpanel's funnels and insights endpoints need a report saved in the
 * Mixpanel UI (`funnel_id`, `bookmark_id`); they are not used.
 */
import { guardedFetch } from "@outcome-runtime/netguard";
import { assertWindow, checkArmAggregates, checkSeries, type RawArmRow } from "../boundary-checks";
import { ConfigReader, show } from "../config-reader";
import type {
  ArmAggregate,
  ConnectorConfig,
  ConnectorContext,
  ExperimentWindow,
  SeriesPoint,
  SeriesWindow,
  SignalConnector,
} from "../connector";
import { ConnectorError } from "../connector-error";
import { credentialFields, credentialValue, readCredentialRef } from "../credentials";
import { vendorApiUrl } from "../vendor-hosts";
import { isRecord, MIXPANEL_REGION_URLS, type QueryApiSettings, queryApiGet } from "./query-api-client";

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
    // When one request of the poll fails, the others are cancelled: their
    // answers would be thrown away, and each costs part of the hourly budget.
    const poll = new AbortController();
    const onAbort = (): void => poll.abort(signal?.reason);
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await this.poll(window, poll.signal);
    } catch (error) {
      poll.abort();
      throw error;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  private async poll(window: ExperimentWindow, signal: AbortSignal): Promise<ArmAggregate[]> {
    const s = this.settings;
    const range = dateRange(window.from, window.to);
    const experiment = `${property(s.experimentProperty)} == ${JSON.stringify(window.experimentKey)}`;
    const inArms = `${property(s.variantProperty)} in [${window.arms.map((a) => JSON.stringify(a)).join(", ")}]`;
    const exposureWhere = `${experiment} and ${inArms}`;
    const eventWhere = s.filter === undefined ? exposureWhere : `${exposureWhere} and (${s.filter})`;

    const unitsRequest = this.uniqueByArm(s.exposureEvent, exposureWhere, range, window.arms.length, signal);
    if (s.valueProperty === undefined) {
      const [units, conversions] = await Promise.all([
        unitsRequest,
        this.uniqueByArm(s.event, eventWhere, range, window.arms.length, signal),
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
    const params: Record<string, string> = {
      event: s.event,
      on: property(s.valueProperty),
      unit: "day",
      from_date: range.fromDate,
      to_date: range.toDate,
    };
    if (s.filter !== undefined) params.where = s.filter;
    const body = await queryApiGet(s.api, "/segmentation/average", params, signal);
    const results = resultsOf(body, "/segmentation/average");
    const rows = Object.entries(results).map(([date, value]) => ({
      ts: `${date.slice(0, 10)}T00:00:00Z`,
      value,
      location: `date ${date}`,
    }));
    return checkSeries(rows, window, "mixpanel /segmentation/average");
  }

  async close(): Promise<void> {}

  /** Unique users of `event` per value of the variant property, over the whole range. */
  private async uniqueByArm(
    event: string,
    where: string,
    range: DateRange,
    arms: number,
    signal: AbortSignal | undefined,
  ): Promise<Map<string, number>> {
    const body = await queryApiGet(
      this.settings.api,
      "/segmentation",
      {
        event,
        from_date: range.fromDate,
        to_date: range.toDate,
        on: property(this.settings.variantProperty),
        where,
        type: "unique",
        interval: String(range.days),
        limit: String(Math.max(arms, 1)),
      },
      signal,
    );
    const data = isRecord(body) ? body.data : undefined;
    const values = isRecord(data) ? data.values : undefined;
    if (!isRecord(values)) {
      throw new ConnectorError(
        "bad_response",
        `mixpanel /segmentation: the answer has no data.values object (got ${show(body)}); check api_url`,
        { details: { path: "/segmentation", event } },
      );
    }
    const counts = new Map<string, number>();
    for (const [segment, byDate] of Object.entries(values)) {
      if (!isRecord(byDate)) {
        throw new ConnectorError(
          "bad_response",
          `mixpanel /segmentation: data.values[${JSON.stringify(segment)}] is ${show(byDate)}, not a map of dates to counts`,
          { details: { path: "/segmentation", segment } },
        );
      }
      const nonZero: number[] = [];
      for (const [date, count] of Object.entries(byDate)) {
        if (typeof count !== "number" || !Number.isFinite(count) || count < 0) {
          throw new ConnectorError(
            "bad_response",
            `mixpanel /segmentation: the count of ${JSON.stringify(segment)} on ${date} is ${show(count)}, not a count`,
            { details: { path: "/segmentation", segment, date, value: count } },
          );
        }
        if (count !== 0) nonZero.push(count);
      }
      if (nonZero.length > 1) {
        throw new ConnectorError(
          "bad_response",
          `mixpanel /segmentation: unique users of ${JSON.stringify(event)} for ${JSON.stringify(segment)} came back in ${nonZero.length} periods, and unique counts cannot be added across periods; the window of ${range.days} days should be one period`,
          { details: { path: "/segmentation", segment, periods: nonZero.length } },
        );
      }
      counts.set(segment, nonZero[0] ?? 0);
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
    const body = await queryApiGet(
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
      if (typeof value !== "number" || !Number.isFinite(value)) {
        throw new ConnectorError(
          "bad_response",
          `mixpanel /segmentation/sum: the sum on ${date} is ${show(value)}, not a number; check that value_property is numeric`,
          { details: { path: "/segmentation/sum", date, value } },
        );
      }
      total += value;
    }
    return total;
  }
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
