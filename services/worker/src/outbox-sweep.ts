/**
 * The outbox sweep: every `OUTBOX_INTERVAL_MS`, what Postgres holds for the
 * worker goes to the queues. Gate emails waiting to be sent, webhooks waiting
 * to be delivered, newly opened gates' SLA steps (delayed jobs), SLA steps due
 * by the clock, a person's "poll now" requests and the learning summaries
 * decisions asked for, a pass of learning embeddings when some are waiting,
 * and the flag rollouts due. Job ids name the work, so replicas sweeping at
 * once add each job once.
 */
import {
  dueFlagRollouts,
  dueSlaSteps,
  embedLearningsJobId,
  flagJobId,
  gateSlaJobId,
  learningJobId,
  markGatesScheduled,
  nextEmbeddingPass,
  openNotifications,
  pendingLearningSummaries,
  pendingPollRequests,
  pendingWebhooks,
  pollRequestDone,
  unscheduledGates,
  webhookJobId,
} from "@outcome-runtime/runtime";
import { queueGateEmails, type WorkerContext } from "./context";

export interface DispatchReport {
  /** Gate email jobs added. */
  readonly emails: number;
  readonly webhooks: number;
  /** Delayed SLA jobs added for newly opened gates. */
  readonly scheduled: number;
  /** Due SLA steps queued now (a delayed job promoted, or a lost one re-added). */
  readonly due: number;
  /** "Poll now" jobs added. */
  readonly polls: number;
  /** Learning summary jobs added. */
  readonly summaries: number;
  /** Learning embedding passes added (0 or 1: one pass embeds every learning waiting). */
  readonly embeddings: number;
  /** Flag rollout attempts added (a split to write, or one to retry after its backoff). */
  readonly flags: number;
}

/** Sweep the outboxes and the due gate deadlines to the queues once; returns what was queued. */
export async function sweepOutboxes(context: WorkerContext): Promise<DispatchReport> {
  const { deps, queues } = context;
  const emails = context.mail === null ? 0 : await queueGateEmails(context, await openNotifications(deps));
  let webhooks = 0;
  if (context.webhook.url !== null) {
    for (const id of await pendingWebhooks(deps, 0)) {
      if (await queues.addUnlessStored("deliverWebhook", { deliveryId: id }, webhookJobId(id))) webhooks += 1;
    }
  }
  // Newly opened gates: their reminder and expiry as delayed jobs.
  const fresh = await unscheduledGates(deps);
  const now = (deps.now?.() ?? new Date()).getTime();
  for (const gate of fresh) {
    await queues.ensure("gateReminder", { gateId: gate.id }, gateSlaJobId("reminder", gate.id), {
      delay: Math.max(1, gate.remindAt.getTime() - now),
    });
    await queues.ensure("gateExpiry", { gateId: gate.id }, gateSlaJobId("expiry", gate.id), {
      delay: Math.max(1, gate.dueAt.getTime() - now),
    });
  }
  await markGatesScheduled(
    deps,
    fresh.map((g) => g.id),
  );
  // Deadlines that have come by the clock: run them now (a lost or early job is replaced).
  let due = 0;
  for (const step of await dueSlaSteps(deps)) {
    const key = step.step === "reminder" ? "gateReminder" : "gateExpiry";
    if (await queues.ensure(key, { gateId: step.gateId }, gateSlaJobId(step.step, step.gateId), { promote: true })) {
      due += 1;
    }
  }
  // A person's "poll now": its job, until the job has run (then the request is forgotten). A job Redis lost is
  // added again; one that ran, even to a failure (recorded on the experiment), is not repeated.
  let polls = 0;
  for (const request of await pendingPollRequests(deps)) {
    const state = await queues.stateOf("pollExperiment", request.jobId);
    if (state === "completed" || state === "failed") await pollRequestDone(deps, request);
    else if (state === null) {
      await queues.add("pollExperiment", { experimentId: request.experimentId }, { jobId: request.jobId });
      polls += 1;
    }
  }
  // Learning summaries: the job deletes its request when done; one that failed all its attempts is replaced.
  let summaries = 0;
  for (const id of await pendingLearningSummaries(deps)) {
    if (await queues.addUnlessStored("summarizeLearning", { learningId: id }, learningJobId(id))) summaries += 1;
  }
  // Learnings to embed (new, changed, or a failure due again): one pass embeds them all, named by the oldest.
  let embeddings = 0;
  const next = await nextEmbeddingPass({ ...deps, gateway: context.gateway });
  if (next !== null && (await queues.addUnlessStored("embedLearnings", {}, embedLearningsJobId(next, new Date(now))))) {
    embeddings += 1;
  }
  // Flag rollouts due (new, or a failed attempt's backoff over): one job per attempt, named by it.
  let flags = 0;
  if (context.flags !== null) {
    for (const r of await dueFlagRollouts(deps)) {
      const jobId = flagJobId(r.experimentId, r.version, r.dueMs, r.leaseUntilMs);
      if (await queues.addUnlessStored("applyFlagRollout", { experimentId: r.experimentId }, jobId)) flags += 1;
    }
  }
  return { emails, webhooks, scheduled: fresh.length, due, polls, summaries, embeddings, flags };
}
