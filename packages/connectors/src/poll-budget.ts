/**
 * Poll budgets of rate-limited sources. Mixpanel's Query API allows about
 * 60 queries an hour and 5 at a time per project
 * (https://docs.mixpanel.com/reference/rate-limits); every series polled
 * from one project shares that budget. The budget counts requests, not
 * experiments: a Mixpanel proportion reads up to
 * {@link MIXPANEL_BATCH_MAX_KEYS} experiments with one pair of requests.
 */
import { formatSeconds } from "./config-reader";
import type { ConnectorConfig } from "./connector";
import {
  MIXPANEL_BATCH_MAX_KEYS,
  MIXPANEL_REQUESTS_PER_BATCH,
  mixpanelReadsInBatches,
  mixpanelRequestsPerPoll,
} from "./mixpanel/mixpanel.connector";
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
  const perPoll = requestsPerPoll(config, options);
  const count = Math.max(1, Math.ceil(experiments));
  if (perPoll === 0) return 0;
  if (mixpanelReadsInBatches(config)) return MIXPANEL_REQUESTS_PER_BATCH * Math.ceil(count / MIXPANEL_BATCH_MAX_KEYS);
  return count * perPoll;
}

/**
 * The poll interval a series can really have. For Mixpanel, the series of
 * one project share about {@link MIXPANEL_PLANNED_QUERIES_PER_HOUR} queries
 * an hour: when `seriesSharingProject` series polled every
 * `requestedSeconds` would need more, the interval is stretched to fit,
 * rounded up to a whole minute, and `note` says why. Other types keep the
 * requested interval.
 *
 * Formula: needed/hour = requests per round × 3600 / interval, where requests
 * per round is {@link requestsPerRound} of the series (series × requests per
 * poll, or 2 per 100 experiments read in batches); stretched interval =
 * ⌈requests per round × 3600 / budget⌉.
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
  const perRound = requestsPerRound(config, series, options);
  const perHour = (perRound * 3600) / requestedSeconds;
  if (perHour <= MIXPANEL_PLANNED_QUERIES_PER_HOUR) return { seconds: requestedSeconds, note: null };
  const needed = (perRound * 3600) / MIXPANEL_PLANNED_QUERIES_PER_HOUR;
  const seconds = Math.max(requestedSeconds, Math.ceil(needed / 60) * 60);
  const project = config.project_id === undefined ? "" : ` ${String(config.project_id)}`;
  const cost = mixpanelReadsInBatches(config)
    ? `read in batches (${perRound} ${perRound === 1 ? "query" : "queries"} per round)`
    : `at ${perPoll} ${perPoll === 1 ? "query" : "queries"} per poll`;
  const note =
    `Mixpanel allows about ${MIXPANEL_QUERIES_PER_HOUR} queries an hour per project; ` +
    `${series} series of project${project} ${cost} every ${formatSeconds(requestedSeconds)} would need ${Math.ceil(perHour)} an hour, ` +
    `so each is polled every ${formatSeconds(seconds)} instead (planned budget ${MIXPANEL_PLANNED_QUERIES_PER_HOUR} an hour)`;
  return { seconds, note };
}
