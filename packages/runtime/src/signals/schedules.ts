/**
 * What the worker's Job Schedulers should be, from Postgres (the source of
 * truth): one poll schedule per running experiment and per active outcome, at
 * the outcome's `signal.poll_interval`, stretched where a connector's budget
 * demands it (Mixpanel allows about 60 queries an hour per project).
 */
import { effectivePollInterval, readsInBatches } from "@outcome-runtime/connectors";
import { jobRequests, signals } from "@outcome-runtime/db";
import type { OutcomeSpec } from "@outcome-runtime/spec";
import type { RuntimeDeps } from "../context";
import { pollNowJobId } from "../jobs";
import { measuredMetrics } from "./poll";

type ConnectorConfig = { type: string } & Record<string, unknown>;
type Spec = { signal?: { poll_interval?: number; connector?: ConnectorConfig } };

/** Default poll interval when a spec has none: 6 hours, in seconds. */
export const DEFAULT_POLL_INTERVAL_SECONDS = 6 * 3600;

export interface DesiredSchedules {
  /** Poll interval in ms per running experiment id polled on its own (a metric of its outcome does not batch). */
  readonly experiments: ReadonlyMap<string, number>;
  /**
   * Poll interval in ms per outcome whose running experiments are polled together: every metric of the
   * outcome reads in batches (`readsInBatches`), and it has running experiments.
   */
  readonly batches: ReadonlyMap<string, number>;
  /** Poll interval in ms per active outcome id. */
  readonly outcomes: ReadonlyMap<string, number>;
  /** Why an interval was stretched, one note per connector. */
  readonly notes: readonly string[];
}

/** The schedules the worker should hold now. Intervals are at least 1 s. */
export async function desiredSchedules(deps: RuntimeDeps): Promise<DesiredSchedules> {
  const targets = await signals.listPollTargets(deps.db);
  const notes: string[] = [];
  // How many series read through the same connector config (Mixpanel's budget is per project).
  const sharing = new Map<string, number>();
  const keyOf = (c: ConnectorConfig | undefined) => JSON.stringify(c ?? {});
  for (const r of targets.experiments) {
    const k = keyOf((r.spec as Spec).signal?.connector);
    sharing.set(k, (sharing.get(k) ?? 0) + 1);
  }
  const interval = (spec: Spec): number => {
    const requested = spec.signal?.poll_interval ?? DEFAULT_POLL_INTERVAL_SECONDS;
    const connector = spec.signal?.connector;
    if (connector === undefined) return Math.max(1000, requested * 1000);
    const effective = effectivePollInterval(connector, requested, sharing.get(keyOf(connector)) ?? 1);
    if (effective.note !== null && !notes.includes(effective.note)) notes.push(effective.note);
    return Math.max(1000, Math.round(effective.seconds * 1000));
  };
  const batched = new Map<string, boolean>();
  const isBatched = (outcomeId: string, spec: unknown): boolean => {
    let yes = batched.get(outcomeId);
    if (yes === undefined) {
      yes = batchedSpec(spec);
      batched.set(outcomeId, yes);
    }
    return yes;
  };
  const single = targets.experiments.filter((r) => !isBatched(r.outcomeId, r.spec));
  const together = targets.experiments.filter((r) => isBatched(r.outcomeId, r.spec));
  return {
    experiments: new Map(single.map((r) => [r.id, interval(r.spec as Spec)])),
    batches: new Map(together.map((r) => [r.outcomeId, interval(r.spec as Spec)])),
    outcomes: new Map(targets.outcomes.map((r) => [r.id, interval(r.spec as Spec)])),
    notes,
  };
}

/** Whether every metric an outcome's experiments are measured on reads in batches (see `readsInBatches`). */
function batchedSpec(spec: unknown): boolean {
  try {
    return measuredMetrics(spec as OutcomeSpec).every((m) => readsInBatches(m.connector));
  } catch {
    // A spec the runtime cannot read polls one experiment at a time, where its error is recorded on each.
    return false;
  }
}

/** As-of time (ms) of the newest stored point of an experiment's primary metric, or null. */
export async function primaryPolledUntil(deps: RuntimeDeps, experimentId: string): Promise<number | null> {
  const series = (await signals.listSeriesOfExperiment(deps.db, experimentId)).find((s) => s.role === "primary");
  return series?.polledUntil?.getTime() ?? null;
}

/** Outbox webhooks still pending after `olderThanMs` (their delivery job may have been lost). */
export async function pendingWebhooks(deps: RuntimeDeps, olderThanMs: number): Promise<string[]> {
  return signals.listPendingWebhookIds(deps.db, new Date(Date.now() - olderThanMs));
}

/** A person's "poll now" waiting for its job to run, with the job id it runs as. */
export interface PollRequest {
  readonly experimentId: string;
  readonly requestedAt: Date;
  readonly jobId: string;
}

/** "Poll now" requests whose job has not run yet (oldest first), for the worker's outbox sweep. */
export async function pendingPollRequests(deps: RuntimeDeps): Promise<PollRequest[]> {
  const requests = await jobRequests.listPollRequests(deps.db);
  return requests.map((r) => ({ ...r, jobId: pollNowJobId(r.experimentId, r.requestedAt) }));
}

/** A "poll now" request's job has run (completed, or failed all its attempts): forget the request. */
export async function pollRequestDone(deps: RuntimeDeps, request: PollRequest): Promise<void> {
  await jobRequests.deletePollRequest(deps.db, request);
}

/** How often an outcome's signal is polled: what it asks for, what its connector's budget allows, and why. */
export interface PollingPlan {
  readonly requestedSeconds: number;
  readonly effectiveSeconds: number;
  /** Why the interval was stretched (e.g. Mixpanel's hourly query budget), or null. */
  readonly note: string | null;
}

/**
 * The polling plan of an outcome's signal, counting the running experiments
 * (of every outcome) that read through the same connector configuration.
 */
export async function pollingPlan(deps: RuntimeDeps, spec: unknown): Promise<PollingPlan> {
  const signal = (spec as Spec).signal;
  const requested = signal?.poll_interval ?? DEFAULT_POLL_INTERVAL_SECONDS;
  const connector = signal?.connector;
  if (connector === undefined) return { requestedSeconds: requested, effectiveSeconds: requested, note: null };
  const sharing = await signals.countRunningExperimentsWithConnector(deps.db, connector);
  const effective = effectivePollInterval(connector, requested, Math.max(1, sharing));
  return { requestedSeconds: requested, effectiveSeconds: effective.seconds, note: effective.note };
}
