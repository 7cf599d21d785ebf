/**
 * Learnings written when an analysis review concludes an experiment (ship,
 * iterate, roll back). The decision's transaction writes a statement from the
 * numbers (the rules summariser), so a learning exists the moment the
 * decision does, and asks for its summary in the same transaction (an outbox
 * row); the worker then asks the LLM gateway for a better sentence
 * (`summarize_learning`) and replaces it when one comes back.
 */
import type { Experiment, Gate, Outcome } from "@outcome-runtime/core";
import { experiments, jobRequests, learnings, outcomes, signals, type Trx } from "@outcome-runtime/db";
import type { Gateway } from "@outcome-runtime/llm";
import { summarizeLearningOffline } from "@outcome-runtime/llm/offline";
import type { RuntimeDeps } from "./context";
import { specOf } from "./spec-of";

type SummaryInput = Parameters<typeof summarizeLearningOffline>[0];

function summaryInput(
  experiment: Pick<Experiment, "title" | "statement">,
  metric: string,
  decision: string,
  effect: { effect: number | null; ciLow: number | null; ciHigh: number | null },
): SummaryInput {
  return {
    experiment: { title: experiment.title, statement: experiment.statement },
    metric,
    decision,
    effect: effect.effect,
    ciLow: effect.ciLow,
    ciHigh: effect.ciHigh,
  };
}

/**
 * Write the learning of a concluding analysis-review decision, inside the
 * decision's transaction: statement and tags from the rules summariser, the
 * latest analysis's effect and always-valid interval, the decision's reason.
 * One learning per gate (a unique index), so a retried decision cannot write two.
 * Its LLM summary is requested in the same transaction (the worker's outbox
 * sweep queues it).
 *
 * @returns the learning's id.
 */
export async function writeLearningForDecision(
  trx: Trx,
  input: { gate: Gate; outcome: Outcome; experiment: Experiment; at: Date },
): Promise<string> {
  const { gate, outcome, experiment } = input;
  const decision = gate.decision?.decision ?? "";
  const latest = await signals.latestAnalysis(trx, experiment.id);
  const effect = { effect: latest?.effect ?? null, ciLow: latest?.ciLow ?? null, ciHigh: latest?.ciHigh ?? null };
  const metric = specOf(outcome).signal.metric;
  const summary = summarizeLearningOffline(summaryInput(experiment, metric, decision, effect));
  const reason = gate.decision?.reason?.trim();
  const learningId = await learnings.insertLearning(trx, {
    workspaceId: gate.workspaceId,
    outcomeId: outcome.id,
    experimentId: experiment.id,
    statement: reason ? `${summary.statement} Reason: ${reason}` : summary.statement,
    decision,
    ...effect,
    tags: summary.tags,
    source: "rules",
    gateId: gate.id,
    links: experiment.build?.pullRequestUrl ? [{ label: "pull request", url: experiment.build.pullRequestUrl }] : [],
  });
  await jobRequests.insertLearningSummaryRequest(trx, { workspaceId: gate.workspaceId, learningId, at: input.at });
  return learningId;
}

/**
 * Ask the LLM gateway to summarise a learning and keep its sentence when an
 * LLM (not the rules engine) served. Idempotent: a learning already summarised
 * by a model is left alone.
 *
 * @returns `summarized` (replaced), `kept` (the rules answered, or it was already done), `missing`.
 */
export async function refineLearning(
  deps: RuntimeDeps & { readonly gateway: Gateway },
  learningId: string,
): Promise<"summarized" | "kept" | "missing"> {
  const learning = await learnings.findLearningForSummary(deps.db, learningId);
  if (learning === null) return "missing";
  if (learning.source !== "rules" || learning.experimentId === null) return "kept";
  const experiment = await experiments.findExperiment(deps.db, learning.workspaceId, learning.experimentId);
  const outcome = await outcomes.findOutcome(deps.db, learning.workspaceId, learning.outcomeId);
  if (experiment === null || outcome === null) return "missing";
  const metric = specOf(outcome).signal.metric;
  const result = await deps.gateway.run(
    "summarize_learning",
    summaryInput(experiment, metric, learning.decision, learning),
    {
      workspaceId: learning.workspaceId,
      outcomeId: learning.outcomeId,
      actor: { id: "worker", name: "worker", role: "system" },
      channel: "system",
    },
  );
  if (result.source === "rules") return "kept";
  // The person's reason, written with the decision, stays with the model's sentence.
  const reason = /\sReason: [\s\S]*$/.exec(learning.statement)?.[0] ?? "";
  const replaced = await learnings.replaceLearningSummary(deps.db, learning.id, {
    statement: `${result.output.statement}${reason}`,
    tags: result.output.tags,
    source: result.source,
  });
  return replaced ? "summarized" : "kept";
}

/** Learnings whose LLM summary a decision requested and that is not done yet, oldest first (the worker's sweep). */
export async function pendingLearningSummaries(deps: RuntimeDeps): Promise<string[]> {
  return jobRequests.listLearningSummaryRequests(deps.db);
}

/**
 * The worker's summary of a requested learning: `refineLearning` with the
 * gateway (`kept` without one), then the request is done. A failure is
 * rethrown for the job's retry; on the last attempt the request is given up
 * (the rules' sentence stays).
 *
 * @returns as `refineLearning`.
 */
export async function summarizeLearning(
  deps: RuntimeDeps & { readonly gateway?: Gateway | undefined },
  learningId: string,
  attempt: { readonly final: boolean },
): Promise<"summarized" | "kept" | "missing"> {
  let status: "summarized" | "kept" | "missing";
  try {
    const gateway = deps.gateway;
    status = gateway === undefined ? "kept" : await refineLearning({ ...deps, gateway }, learningId);
  } catch (error) {
    if (attempt.final) await jobRequests.deleteLearningSummaryRequest(deps.db, learningId);
    throw error;
  }
  await jobRequests.deleteLearningSummaryRequest(deps.db, learningId);
  return status;
}
