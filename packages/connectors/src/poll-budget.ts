/**
 * Poll budgets of rate-limited sources. Each vendor documents how many query
 * requests a project (property, organisation) may send an hour; every series
 * polled through the same source shares that budget (Mixpanel: about 60
 * queries an hour and 5 at a time per project,
 * https://docs.mixpanel.com/reference/rate-limits). A connector type declares
 * what a poll round costs ({@link PollCost}, in `request-budget.ts`); the
 * budget counts requests, not experiments: a Mixpanel proportion reads up to
 * {@link MIXPANEL_BATCH_MAX_KEYS} experiments with one pair of requests.
 */

import { amplitudePollCost } from "./amplitude/amplitude.connector";
import { formatSeconds } from "./config-reader";
import type { ConnectorConfig } from "./connector";
import { datadogPollCost } from "./datadog/datadog.connector";
import { ga4PollCost } from "./ga4/ga4.connector";
import {
  MIXPANEL_BATCH_MAX_KEYS,
  MIXPANEL_PLANNED_QUERIES_PER_HOUR,
  MIXPANEL_REQUESTS_PER_BATCH,
  mixpanelPollCost,
  mixpanelRequestsPerPoll,
} from "./mixpanel/mixpanel.connector";
import { posthogPollCost } from "./posthog/posthog.connector";
import type { PollCost } from "./request-budget";

export { MIXPANEL_PLANNED_QUERIES_PER_HOUR } from "./mixpanel/mixpanel.connector";

/** Options of {@link effectivePollInterval}. */
export interface PollBudgetOptions {
  /** Arms per experiment (default 2); a mean metric on Mixpanel costs two requests per arm. */
  arms?: number;
}

/**
 * What a poll round costs per connector type, for the types whose source has
 * a request budget; the others (SQL sources, files, Prometheus) have none.
 */
const POLL_COSTS: Readonly<Record<string, (config: ConnectorConfig) => PollCost | null>> = {
  amplitude: amplitudePollCost,
  datadog: datadogPollCost,
  ga4: ga4PollCost,
  mixpanel: mixpanelPollCost,
  posthog: posthogPollCost,
};

/** How people call each vendor in notes. */
const VENDOR_NAMES: Readonly<Record<string, string>> = {
  amplitude: "Amplitude",
  datadog: "Datadog",
  ga4: "Google Analytics 4",
  mixpanel: "Mixpanel",
  posthog: "PostHog",
};

/**
 * What a poll round with these settings costs its source's request budget, or
 * null for a source without one.
 */
export function pollCostOf(config: ConnectorConfig): PollCost | null {
  const cost = POLL_COSTS[config.type];
  return cost === undefined ? null : cost(config);
}

/**
 * Requests one poll of an experiment costs with this connector; 0 for
 * sources without a query budget.
 */
export function requestsPerPoll(config: ConnectorConfig, options: PollBudgetOptions = {}): number {
  const cost = pollCostOf(config);
  if (cost === null) return 0;
  // One experiment read alone: a batched source's round of one, an unbatched source's poll.
  if (config.type === "mixpanel") {
    const hasValue = typeof config.value_property === "string" && config.value_property !== "";
    return mixpanelRequestsPerPoll(hasValue, Math.max(1, options.arms ?? 2));
  }
  return cost.requestsPerRound(1, Math.max(1, options.arms ?? 2));
}

/**
 * Requests one poll round of `experiments` experiments costs with this
 * connector (0 for sources without a query budget): a Mixpanel proportion reads
 * them in batches, {@link MIXPANEL_REQUESTS_PER_BATCH} requests per
 * {@link MIXPANEL_BATCH_MAX_KEYS} experiments; a Mixpanel mean reads each on
 * its own ({@link requestsPerPoll} each).
 *
 * @example
 * requestsPerRound({ type: "mixpanel", project_id: 1, event: "paid" }, 250); // 2 × ⌈250 / 100⌉ = 6
 */
export function requestsPerRound(
  config: ConnectorConfig,
  experiments: number,
  options: PollBudgetOptions = {},
): number {
  const cost = pollCostOf(config);
  if (cost === null) return 0;
  return cost.requestsPerRound(Math.max(1, Math.ceil(experiments)), Math.max(1, options.arms ?? 2));
}

/**
 * The poll interval a series can really have. The series sharing a source's
 * request budget (Mixpanel's about {@link MIXPANEL_PLANNED_QUERIES_PER_HOUR}
 * queries an hour per project, each vendor's in its connector) are polled no
 * more often than the planned budget allows: when `seriesSharingProject` series
 * polled every `requestedSeconds` would need more, the interval is stretched
 * to fit, rounded up to a whole minute, and `note` says why. Sources without a
 * budget keep the requested interval.
 *
 * Formula: needed/hour = requests per round × 3600 / interval, where requests
 * per round is the connector's {@link PollCost} of the series (series ×
 * requests per poll, or a few per batch of experiments read together);
 * stretched interval = ⌈requests per round × 3600 / planned budget⌉.
 *
 * @example
 * // 40 proportion series (2 requests per poll each) every 15 minutes need
 * // 320 queries an hour: stretched to 1h 36m (40 × 2 × 3600 / 50 s).
 * effectivePollInterval({ type: "mixpanel", project_id: 1, event: "paid" }, 900, 40);
 * @throws RangeError when `requestedSeconds` is not a positive number
 */
export function effectivePollInterval(
  config: ConnectorConfig,
  requestedSeconds: number,
  seriesSharingProject: number,
  options: PollBudgetOptions = {},
): { seconds: number; note: string | null } {
  if (!Number.isFinite(requestedSeconds) || requestedSeconds <= 0) {
    throw new RangeError(`requestedSeconds must be a positive number, got ${requestedSeconds}`);
  }
  const cost = pollCostOf(config);
  if (cost === null) return { seconds: requestedSeconds, note: null };
  const arms = Math.max(1, options.arms ?? 2);
  const series = Math.max(1, Math.ceil(seriesSharingProject));
  const perRound = cost.requestsPerRound(series, arms);
  const perPoll = requestsPerPoll(config, options);
  const perHour = (perRound * 3600) / requestedSeconds;
  if (perHour <= cost.plannedPerHour) return { seconds: requestedSeconds, note: null };
  const needed = (perRound * 3600) / cost.plannedPerHour;
  const seconds = Math.max(requestedSeconds, Math.ceil(needed / 60) * 60);
  const { vendor, scope, perHour: limit, unit = "queries" } = cost.limits;
  const per = scope.split(" ")[0] ?? scope;
  const queries = (n: number) => (unit === "queries" ? `${n} ${n === 1 ? "query" : "queries"}` : `${n} ${unit}`);
  const how =
    perRound < series * perPoll
      ? `read in batches (${queries(perRound)} per round)`
      : `at ${queries(perPoll)} per poll`;
  const note =
    `${VENDOR_NAMES[vendor] ?? vendor} allows about ${limit} ${unit} an hour per ${per}; ` +
    `${series} series of ${scope} ${how} every ${formatSeconds(requestedSeconds)} would need ${Math.ceil(perHour)} an hour, ` +
    `so each is polled every ${formatSeconds(seconds)} instead (planned budget ${cost.plannedPerHour} an hour)`;
  return { seconds, note };
}
