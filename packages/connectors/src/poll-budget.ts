/**
 * Poll budgets of rate-limited sources. Mixpanel's Query API allows about
 * 60 queries an hour and 5 at a time per project
 * (https://docs.mixpanel.com/reference/rate-limits); every series polled
 * from one project shares that budget.
 */
import { formatSeconds } from "./config-reader";
import type { ConnectorConfig } from "./connector";
import { mixpanelRequestsPerPoll } from "./mixpanel/mixpanel.connector";
import { MIXPANEL_QUERIES_PER_HOUR } from "./mixpanel/query-api-client";

/**
 * Queries an hour planned for polling, out of Mixpanel's 60: the rest is
 * left for retries after errors, outcome series and people querying the
 * same project.
 */
export const MIXPANEL_PLANNED_QUERIES_PER_HOUR = 50;

/** Options of {@link effectivePollInterval}. */
export interface PollBudgetOptions {
  /** Arms per experiment (default 2); a mean metric on Mixpanel costs two requests per arm. */
  arms?: number;
}

/**
 * Requests one poll of an experiment costs with this connector; 0 for
 * sources without a query budget.
 */
export function requestsPerPoll(config: ConnectorConfig, options: PollBudgetOptions = {}): number {
  if (config.type !== "mixpanel") return 0;
  const hasValue = typeof config.value_property === "string" && config.value_property !== "";
  return mixpanelRequestsPerPoll(hasValue, Math.max(1, options.arms ?? 2));
}

/**
 * The poll interval a series can really have. For Mixpanel, the series of
 * one project share about {@link MIXPANEL_PLANNED_QUERIES_PER_HOUR} queries
 * an hour: when `seriesSharingProject` series polled every
 * `requestedSeconds` would need more, the interval is stretched to fit,
 * rounded up to a whole minute, and `note` says why. Other types keep the
 * requested interval.
 *
 * Formula: needed/hour = series × requests per poll × 3600 / interval;
 * stretched interval = ⌈series × requests per poll × 3600 / budget⌉.
 *
 * @example
 * // 40 proportion series (2 requests per poll each) every 15 minutes need
 * // 320 queries an hour: stretched to 1h 36m (40 × 2 × 3600 / 50 s).
 * effectivePollInterval({ type: "mixpanel", project_id: 1, event: "paid" }, 900, 40);
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
  const perPoll = requestsPerPoll(config, options);
  if (perPoll === 0) return { seconds: requestedSeconds, note: null };
  const series = Math.max(1, Math.ceil(seriesSharingProject));
  const perHour = (series * perPoll * 3600) / requestedSeconds;
  if (perHour <= MIXPANEL_PLANNED_QUERIES_PER_HOUR) return { seconds: requestedSeconds, note: null };
  const needed = (series * perPoll * 3600) / MIXPANEL_PLANNED_QUERIES_PER_HOUR;
  const seconds = Math.max(requestedSeconds, Math.ceil(needed / 60) * 60);
  const project = config.project_id === undefined ? "" : ` ${String(config.project_id)}`;
  const note =
    `Mixpanel allows about ${MIXPANEL_QUERIES_PER_HOUR} queries an hour per project; ` +
    `${series} series of project${project} at ${perPoll} ${perPoll === 1 ? "query" : "queries"} per poll every ${formatSeconds(requestedSeconds)} would need ${Math.ceil(perHour)} an hour, ` +
    `so each is polled every ${formatSeconds(seconds)} instead (planned budget ${MIXPANEL_PLANNED_QUERIES_PER_HOUR} an hour)`;
  return { seconds, note };
}
