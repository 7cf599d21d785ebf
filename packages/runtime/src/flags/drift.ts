/**
 * Drift: the split a provider serves, checked at every poll against the one
 * the runtime applied. A person changing the weights or variations by hand,
 * deleting the flag or turning its environment off is recorded on the
 * experiment, audited once (`experiment.flag_drift`), kept in the weight
 * history (the SRM check's expected shares), and, when it invalidates the
 * running test, stops it for a person's review (an `analysis_review` gate,
 * reason `flag_drift`). The runtime does not write the flag back: a hand
 * edit may be deliberate (an incident), and the person decides.
 */
import type { Experiment } from "@outcome-runtime/core";
import { audit, experiments, type FlagRollout, flagRollouts, outcomes } from "@outcome-runtime/db";
import type { ServedFlag } from "@outcome-runtime/flags";
import { auditActor, inTransaction, nowOf, workerCaller } from "../context";
import { moveExperiment } from "../move-experiment";
import { openFlagProvider } from "./flag-access";
import type { FlagDeps } from "./rollouts";

/** What kind of drift was found. */
export type DriftKind = "deleted" | "environment_off" | "variations_changed" | "weights_changed" | "unreadable";

/** A drift: its kind, the split applied and what the provider served instead. */
export interface FlagDrift {
  readonly kind: DriftKind;
  readonly expected: Readonly<Record<string, number>>;
  readonly served: Readonly<Record<string, number>> | null;
  readonly variations: readonly string[];
  readonly version: string | null;
  readonly detail: string;
}

/**
 * The drift between an applied split and what the provider serves, or null
 * when it serves the split (pure).
 */
export function driftOf(rollout: FlagRollout, served: ServedFlag | undefined): FlagDrift | null {
  const expected = rollout.desired;
  const base = {
    expected,
    served: served?.weights ?? null,
    variations: served?.variations ?? [],
    version: served?.version ?? null,
  };
  if (served === undefined || !served.exists) {
    return { kind: "deleted", ...base, detail: `flag ${rollout.flagKey} no longer exists in ${rollout.provider}` };
  }
  const missing = rollout.arms.filter((a) => !served.variations.includes(a.name)).map((a) => a.name);
  if (missing.length > 0) {
    return {
      kind: "variations_changed",
      ...base,
      detail: `flag ${rollout.flagKey} has no variation for ${missing.join(", ")}`,
    };
  }
  if (served.weights === null) {
    return {
      kind: "unreadable",
      ...base,
      detail: `flag ${rollout.flagKey} serves rules the runtime did not write; its split cannot be read`,
    };
  }
  if (flagRollouts.sameWeights(served.weights, expected)) return null;
  if (!served.enabled) {
    return { kind: "environment_off", ...base, detail: `flag ${rollout.flagKey} was turned off in its environment` };
  }
  const show = (w: Readonly<Record<string, number>>) =>
    Object.entries(w)
      .map(([k, v]) => `${k} ${Math.round(v * 1000) / 10}%`)
      .join(", ");
  return {
    kind: "weights_changed",
    ...base,
    detail: `flag ${rollout.flagKey} serves ${show(served.weights)} instead of ${show(expected)}`,
  };
}

/** What a drift check found for one experiment. */
export interface DriftFinding {
  readonly experimentId: string;
  readonly drift: FlagDrift | null;
  /** True when this check found it first (audited now). */
  readonly isNew: boolean;
  /** True when the running experiment was stopped for review. */
  readonly stopped: boolean;
}

/**
 * Check the flags of these experiments (one outcome's, or any: they are
 * grouped by outcome, one provider read per outcome for all its keys). Only
 * applied rollouts are compared (a pending one is being written). A provider
 * that cannot be read is skipped (the check runs again at the next poll).
 *
 * @returns the findings, one per applied rollout read
 */
export async function checkFlagDrift(deps: FlagDeps, experimentIds: readonly string[]): Promise<DriftFinding[]> {
  const rollouts = [...(await flagRollouts.findRollouts(deps.db, experimentIds)).values()].filter(
    (r) => r.status === "applied",
  );
  const byOutcome = new Map<string, FlagRollout[]>();
  for (const r of rollouts) byOutcome.set(r.outcomeId, [...(byOutcome.get(r.outcomeId) ?? []), r]);
  const findings: DriftFinding[] = [];
  for (const [outcomeId, group] of byOutcome) {
    const first = group[0] as FlagRollout;
    const outcome = await outcomes.findOutcome(deps.db, first.workspaceId, outcomeId);
    if (outcome === null) continue;
    const now = nowOf(deps);
    let served: ReadonlyMap<string, ServedFlag>;
    try {
      const provider = await openFlagProvider(deps.db, deps.flags, deps.sources, outcome, "worker", now);
      served = await provider.read(
        group.map((r) => r.flagKey),
        AbortSignal.timeout(deps.flags.timeoutMs),
      );
    } catch {
      continue;
    }
    for (const rollout of group) {
      const s = served.get(rollout.flagKey);
      const drift = driftOf(rollout, s);
      const observed = {
        exists: s?.exists ?? false,
        enabled: s?.enabled ?? false,
        variations: s?.variations ?? [],
        weights: s?.weights ?? null,
        version: s?.version ?? null,
      };
      const finding = await inTransaction(deps.db, async (trx) => {
        const { newDrift } = await flagRollouts.recordObservation(
          trx,
          rollout.experimentId,
          now,
          observed,
          drift === null ? null : { ...drift },
        );
        if (!newDrift || drift === null)
          return { experimentId: rollout.experimentId, drift, isNew: false, stopped: false };
        const caller = workerCaller(rollout.workspaceId);
        await audit.insertAuditEvent(trx, {
          workspaceId: rollout.workspaceId,
          actor: auditActor(caller),
          channel: "system",
          action: "experiment.flag_drift",
          subjectType: "experiment",
          subjectId: rollout.experimentId,
          before: { weights: rollout.desired },
          after: { ...drift, provider: rollout.provider, flag_key: rollout.flagKey },
          requestId: null,
        });
        if (drift.served !== null) {
          await flagRollouts.recordWeights(trx, rollout.workspaceId, rollout.experimentId, now, drift.served, "drift");
        }
        // The test assumed the applied split: a running experiment stops for a person's review.
        const [locked] = await experiments.lockExperiments(trx, [rollout.experimentId]);
        let stopped = false;
        if (locked !== undefined && (locked as Experiment).state === "running") {
          const why = { action: "analyse", reason: "flag_drift", detail: drift.detail, analysis_ts: now.toISOString() };
          await moveExperiment(trx, caller, now, {
            experiment: locked,
            outcome,
            action: "analyse",
            facts: { ...why, drift: drift.kind },
            gateContext: why,
            webhook: { ts: now },
          });
          stopped = true;
        }
        return { experimentId: rollout.experimentId, drift, isNew: true, stopped };
      });
      findings.push(finding);
    }
  }
  return findings;
}
