/**
 * The `signals` queue: polls and analyses of running experiments, and the
 * polls of active outcomes. Each job calls one use case, logs what it did and
 * queues what follows (the analysis after a poll) or stops what is over (the
 * scheduler of an experiment decided, of an outcome closed).
 */
import {
  type AnalysisOutcome,
  analyseExperiment,
  analyseJobId,
  checkFlagDrift,
  describePollError,
  experimentSchedulerId,
  flagJobId,
  flagRolloutDue,
  outcomeSchedulerId,
  pollExperiment,
  pollExperimentBatches,
  pollOutcome,
  primaryPolledUntil,
  waitForWebhooks,
  webhookJobId,
} from "@outcome-runtime/runtime";
import { UnrecoverableError } from "bullmq";
import { msSince, type WorkerContext } from "../context";
import type { QueueProcessor } from "../dispatch";

/** The processor of the `signals` queue. */
export function signalsProcessor(context: WorkerContext): QueueProcessor<"signals"> {
  const { logger, queues } = context;

  /** Queue the due attempt at an experiment's flag rollout, if it has one (the job id makes a repeat a no-op). */
  async function queueFlagRollout(experimentId: string) {
    const due = await flagRolloutDue(context.deps, experimentId);
    if (due !== null) {
      await queues.addUnlessStored(
        "applyFlagRollout",
        { experimentId },
        flagJobId(experimentId, due.version, due.dueMs, due.leaseUntilMs),
      );
    }
  }

  /** Check the flags of experiments just polled against the splits applied; log what drifted. */
  async function checkDrift(experimentIds: readonly string[]) {
    if (context.flags === null || experimentIds.length === 0) return;
    for (const f of await checkFlagDrift(context.flags, experimentIds)) {
      if (f.isNew && f.drift !== null) {
        logger.warn({ experimentId: f.experimentId, ...f.drift, stopped: f.stopped }, "flag drift");
      }
    }
  }

  /** Analyse an experiment, log it, and act on its decision: stop its scheduler, queue its webhooks. */
  async function analyseAndAct(experimentId: string) {
    const started = performance.now();
    const outcome = await analyseExperiment(context.signals, experimentId);
    return actOn(experimentId, outcome, msSince(started));
  }

  /** Log an analysis that committed, and act on its decision: stop the experiment's scheduler, queue its webhooks. */
  async function actOn(experimentId: string, outcome: AnalysisOutcome, durationMs: number) {
    context.metrics?.analysisDone(outcome, durationMs / 1000);
    // The newest analysis's answer (a decision, or `continue` with its reason), if one was written.
    const latest = outcome.decision ?? outcome.looks.at(-1) ?? null;
    logger.info(
      {
        experimentId,
        experimentKey: outcome.experimentKey,
        analyses: outcome.analysed,
        action: latest?.action ?? null,
        reason: latest?.reason ?? null,
        state: outcome.state,
        durationMs,
      },
      "experiment analysed",
    );
    if (outcome.decision !== null) {
      logger.info(
        {
          experimentId,
          action: outcome.decision.action,
          reason: outcome.decision.reason,
          detail: outcome.decision.detail,
        },
        "experiment decided",
      );
      await queues.removeScheduler("pollExperiment", experimentSchedulerId(experimentId));
      // The split the decision asks of the flag provider (control to everyone on a pause) goes now, not at the
      // next outbox sweep.
      await queueFlagRollout(experimentId);
    }
    for (const id of outcome.webhooks) {
      await queues.add("deliverWebhook", { deliveryId: id }, { jobId: webhookJobId(id) });
    }
    return { analysed: outcome.analysed, decision: outcome.decision, state: outcome.state };
  }

  return {
    async pollExperiment({ experimentId }, run) {
      const started = performance.now();
      let result: Awaited<ReturnType<typeof pollExperiment>>;
      try {
        result = await pollExperiment(context.signals, experimentId);
      } catch (error) {
        const described = describePollError(error);
        logger.warn(
          { experimentId, ...described, attempt: run.attempt, durationMs: msSince(started), err: error },
          "poll failed",
        );
        // A bad config or bad SQL will not heal by retrying; the next scheduled poll tries again.
        if (!described.retryable) throw new UnrecoverableError(`${described.code}: ${described.message}`);
        throw error;
      }
      if (result.status === "skipped") {
        logger.info(
          {
            experimentId,
            experimentKey: result.experimentKey,
            status: result.status,
            state: result.state,
            durationMs: msSince(started),
          },
          "experiment polled",
        );
        return result;
      }
      logger.info(
        {
          experimentId,
          experimentKey: result.experimentKey,
          status: result.status,
          connectors: [...new Set(result.reads.map((r) => r.connector))],
          rowsRead: result.reads.reduce((sum, r) => sum + r.rows, 0),
          inserted: result.inserted,
          updated: result.updated,
          unchanged: result.unchanged,
          newestTs: result.newestTs?.toISOString() ?? null,
          attempt: run.attempt,
          durationMs: msSince(started),
        },
        "experiment polled",
      );
      for (const f of result.failures) {
        logger.warn(
          { experimentId, experimentKey: result.experimentKey, ...f },
          f.throttled ? "source throttled: metric held back until its rate limit allows a read" : "source failed",
        );
      }
      await checkDrift([experimentId]);
      // Analyse up to the newest stored point; the job id makes a re-poll with nothing new a no-op.
      const upTo = await primaryPolledUntil(context.signals, experimentId);
      if (upTo !== null) {
        await queues.addUnlessStored("analyseExperiment", { experimentId }, analyseJobId(experimentId, upTo));
      }
      return { ...result, newestTs: result.newestTs?.toISOString() ?? null };
    },

    async analyseExperiment({ experimentId }) {
      return analyseAndAct(experimentId);
    },

    async pollExperimentBatch({ outcomeId }) {
      const started = performance.now();
      let decided = 0;
      const decisionWebhooks: string[] = [];
      const result = await pollExperimentBatches(context.signals, outcomeId, {
        batchSize: context.pollBatchSize,
        storeSize: context.pollStoreSize,
        // Half the worker's slots (at least one): the other jobs of the process (webhook deliveries, other
        // outcomes' rounds) keep theirs, and more transactions at once than Postgres has cores only contend.
        concurrency: Math.max(1, Math.floor(context.concurrency / 2)),
        // Act on each group as it commits: a pause's scheduler stop and webhooks do not wait for the round.
        onStored: async (p) => {
          const done = await actOn(p.experimentId, p.analysis, Math.round(p.durationSeconds * 10_000) / 10);
          if (done.decision !== null) decided += 1;
          decisionWebhooks.push(...p.analysis.webhooks);
        },
        // The pauses' webhooks before the rest of the round: their deliveries share this process's event loop.
        afterSuspects: async () => {
          const ids = decisionWebhooks.splice(0);
          if (context.webhook.url !== null) await waitForWebhooks(context.deps, ids, SUSPECT_WEBHOOK_WAIT_MS);
        },
      });
      for (const f of result.failed) {
        logger.warn(
          {
            experimentId: f.experimentId,
            experimentKey: f.experimentKey,
            code: f.code,
            message: f.message,
            partial: f.partial,
            outcomeId,
          },
          f.partial ? "poll failed for one source: the others were stored" : "poll failed",
        );
      }
      for (const t of result.throttled) {
        logger.warn({ outcomeId, ...t }, "source throttled: metric held back until its rate limit allows a read");
      }
      for (const e of result.escalations) {
        logger.warn({ experimentId: e.experimentId, action: e.action, reason: e.reason }, "experiment decided");
      }
      await checkDrift(result.polled.map((p) => p.experimentId));
      logger.info(
        {
          outcomeId,
          experiments: result.experiments,
          requests: result.requests,
          polled: result.polled.length,
          failed: result.failed.length,
          decided,
          durationMs: msSince(started),
        },
        "experiments polled in batches",
      );
      return {
        experiments: result.experiments,
        requests: result.requests,
        polled: result.polled.length,
        failed: result.failed.length,
        decided,
      };
    },

    async pollOutcome({ outcomeId }) {
      const started = performance.now();
      const result = await pollOutcome(context.signals, outcomeId);
      logger.info(
        result.status === "polled"
          ? {
              outcomeId,
              status: result.status,
              value: result.value,
              goal: result.goal,
              state: result.state,
              note: result.note,
              sustained: result.achievement.sustained,
              ...(result.achievement.sustained ? {} : { notSustained: result.achievement.reason }),
              achievementGateId: result.gate?.id ?? null,
              durationMs: msSince(started),
            }
          : { outcomeId, status: result.status, state: result.state, durationMs: msSince(started) },
        "outcome polled",
      );
      if (result.status === "polled" && result.gate?.opened && result.achievement.sustained) {
        const e = result.achievement.evidence;
        logger.info(
          {
            outcomeId,
            gateId: result.gate.id,
            goal: e.goal,
            latest: e.latest,
            mean: e.mean,
            bound: e.bound,
            points: e.points,
            windowStart: e.windowStart,
            windowEnd: e.windowEnd,
          },
          "outcome target sustained: confirm-achieved gate opened for the owner",
        );
      }
      if (result.status === "polled" && result.state !== "active") {
        await queues.removeScheduler("pollOutcome", outcomeSchedulerId(outcomeId));
      }
      return result;
    },
  };
}

/** The longest a batched round waits for its suspects' webhooks before storing the rest, ms. */
const SUSPECT_WEBHOOK_WAIT_MS = 2_000;
