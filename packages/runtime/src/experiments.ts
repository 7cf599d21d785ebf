/**
 * Experiments: proposing a hypothesis, reading one, and the lifecycle actions
 * people and agents request directly. Gate-driven moves live in `decide-gate.ts`.
 */
import {
  type Arm,
  authorize,
  DIRECT_EXPERIMENT_ACTIONS,
  DomainError,
  type Experiment,
  type ExperimentAction,
  type Gate,
  matchPaths,
  type Operation,
  type Prediction,
  type SourceHealth,
} from "@outcome-runtime/core";
import {
  audit,
  type DbOrTrx,
  experiments,
  flagRollouts,
  gates,
  jobRequests,
  type Page,
  type PageRequest,
  signals,
  sourceHealth,
} from "@outcome-runtime/db";
import { auditActor, type Caller, inTransaction, nowOf, type RuntimeDeps } from "./context";
import { flagKeyOf, flagsOf, openFlagProvider } from "./flags/flag-access";
import { type FlagStatus, flagStatusOf } from "./flags/rollouts";
import { requestFingerprint, runIdempotent } from "./idempotency";
import { pollNowJobId } from "./jobs";
import { moveExperiment } from "./move-experiment";
import { ensurePendingGate } from "./open-gate";
import { requireOutcome } from "./outcomes";
import { specOf } from "./spec-of";

/** A hypothesis as submitted (by a person through the API, or by the engine). */
export interface HypothesisInput {
  readonly title: string;
  readonly statement: string;
  readonly mechanism?: string | undefined;
  readonly prediction?: Prediction | undefined;
  readonly measurementPlan?: string | undefined;
  readonly rolloutPlan?: string | undefined;
  readonly effort?: "low" | "medium" | "high" | undefined;
  readonly risk?: "low" | "medium" | "high" | undefined;
  readonly touchedPaths?: readonly string[] | undefined;
  /** Arms and weights; the outcome's `experiment_defaults.arms` when absent. */
  readonly arms?: readonly Arm[] | undefined;
  /** A stable key for flags and signal queries; derived from the title when absent. */
  readonly key?: string | undefined;
}

export interface ProposeResult {
  readonly experiment: Experiment;
  readonly gate: Gate;
  /** Whether this proposal opened the portfolio review (false: it joined a pending one). */
  readonly gateOpened: boolean;
}

/** @throws DomainError `not_found`. */
export async function requireExperiment(
  db: DbOrTrx,
  workspaceId: string,
  idOrKey: string,
  lookup: { forUpdate?: boolean } = {},
): Promise<Experiment> {
  const found = await experiments.findExperiment(db, workspaceId, idOrKey, lookup);
  if (found === null) {
    throw new DomainError("not_found", `no experiment "${idOrKey}" in this workspace`, { experiment: idOrKey });
  }
  return found;
}

function slugify(text: string): string {
  return (
    text
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 48)
      .replace(/-+$/g, "") || "experiment"
  );
}

const UUID_SHAPED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Keys to try for a new experiment: the given one, or the title's slug with suffixes. */
function* candidateKeys(input: HypothesisInput): Generator<string> {
  if (input.key !== undefined) {
    if (UUID_SHAPED.test(input.key)) {
      throw new DomainError("validation_failed", `experiment key "${input.key}" looks like an id; choose a name`, {
        field: "key",
      });
    }
    yield input.key;
    return;
  }
  let base = slugify(input.title);
  if (UUID_SHAPED.test(base)) base = `${base.slice(0, 40)}-exp`;
  for (let n = 1; n <= 100; n += 1) yield n === 1 ? base : `${base}-${n}`;
}

function validateArms(arms: readonly Arm[]): void {
  const names = new Set(arms.map((a) => a.name));
  const sum = arms.reduce((s, a) => s + a.weight, 0);
  if (arms.length < 2 || names.size !== arms.length || !names.has("control") || Math.abs(sum - 1) > 1e-9) {
    throw new DomainError(
      "validation_failed",
      `arms must be at least two uniquely named arms including "control", with weights summing to 1 (got ${sum})`,
      { field: "arms" },
    );
  }
}

/**
 * Propose a hypothesis for an active outcome. It joins the outcome's pending
 * `portfolio_review` gate, or opens one. Proposal, gate and audit events are one
 * transaction, serialised per outcome by a row lock.
 *
 * @throws DomainError `not_found`, `outcome_not_active`, `forbidden_paths_touched`
 *   (a touched path under `forbidden_paths`), `validation_failed` (arms, an
 *   id-shaped key), `experiment_key_taken`.
 */
export async function proposeExperiment(
  deps: RuntimeDeps,
  caller: Caller,
  outcomeIdOrSlug: string,
  input: HypothesisInput,
  source = "human",
): Promise<ProposeResult> {
  authorize(caller, "experiment.propose");
  return inTransaction(deps.db, async (trx) => {
    const workspaceId = caller.principal.workspaceId;
    const outcome = await requireOutcome(trx, workspaceId, outcomeIdOrSlug, { forUpdate: true });
    if (outcome.state !== "active") {
      throw new DomainError(
        "outcome_not_active",
        `outcome ${outcome.slug} is ${outcome.state}; hypotheses are proposed for active outcomes (activate it first)`,
        { state: outcome.state },
      );
    }
    const spec = specOf(outcome);
    const touched = matchPaths(input.touchedPaths ?? [], spec.constraints?.scope?.forbidden_paths ?? []);
    if (touched.length > 0) {
      throw new DomainError(
        "forbidden_paths_touched",
        `the hypothesis touches paths outcome ${outcome.slug} forbids: ${touched.join(", ")}; propose a change outside constraints.scope.forbidden_paths`,
        { paths: touched },
      );
    }
    const arms = input.arms ?? spec.experiment_defaults.arms.map((a) => ({ name: a.name, weight: a.weight }));
    validateArms(arms);
    const at = nowOf(deps);
    const { gate, opened } = await ensurePendingGate(trx, caller, outcome, "portfolio_review", null, at);
    let experiment: Experiment | null = null;
    // The unique constraint decides who gets a key; a taken one moves on to the next candidate.
    for (const key of candidateKeys(input)) {
      experiment = await experiments.insertExperiment(trx, {
        workspaceId,
        outcomeId: outcome.id,
        key,
        title: input.title,
        statement: input.statement,
        mechanism: input.mechanism ?? "",
        prediction: input.prediction ?? null,
        measurementPlan: input.measurementPlan ?? "",
        rolloutPlan: input.rolloutPlan ?? "",
        effort: input.effort ?? null,
        risk: input.risk ?? null,
        touchedPaths: input.touchedPaths ?? [],
        arms,
        source,
        portfolioGateId: gate.id,
      });
      if (experiment !== null) break;
    }
    if (experiment === null) {
      throw new DomainError(
        "experiment_key_taken",
        input.key !== undefined
          ? `experiment key "${input.key}" is taken in this workspace; choose another`
          : `too many experiments are named like "${input.title}"; give this one a key`,
        { field: "key" },
      );
    }
    const key = experiment.key;
    await audit.insertAuditEvent(trx, {
      workspaceId,
      actor: auditActor(caller),
      channel: caller.channel,
      action: "experiment.proposed",
      subjectType: "experiment",
      subjectId: experiment.id,
      before: null,
      after: { key, title: input.title, outcomeId: outcome.id, portfolioGateId: gate.id, source },
      requestId: caller.requestId,
    });
    return { experiment, gate, gateOpened: opened };
  });
}

/**
 * `proposeExperiment` made safe to retry: with an idempotency key, the first
 * request's response (as shaped by `present`) is stored with the proposal in
 * one transaction and returned again for a retry of the same request; without
 * a key it simply proposes. The fingerprint uses the resolved outcome id, so a
 * retry by slug or by id is the same request.
 *
 * @throws as `proposeExperiment`, and `idempotency_key_reused` (see `runIdempotent`).
 */
export async function proposeExperimentIdempotently<T>(
  deps: RuntimeDeps,
  caller: Caller,
  outcomeIdOrSlug: string,
  input: HypothesisInput,
  idempotencyKey: string | undefined,
  present: (result: ProposeResult) => T,
): Promise<{ body: T; replayed: boolean }> {
  authorize(caller, "experiment.propose");
  if (idempotencyKey === undefined) {
    return { body: present(await proposeExperiment(deps, caller, outcomeIdOrSlug, input)), replayed: false };
  }
  const outcome = await requireOutcome(deps.db, caller.principal.workspaceId, outcomeIdOrSlug);
  const result = await runIdempotent(
    deps,
    {
      workspaceId: caller.principal.workspaceId,
      key: idempotencyKey,
      fingerprint: requestFingerprint("propose_experiment", outcome.id, input),
    },
    async (trx) => ({
      statusCode: 201,
      body: present(await proposeExperiment({ ...deps, db: trx }, caller, outcome.id, input)),
    }),
  );
  return { body: result.body, replayed: result.replayed };
}

export interface ExperimentDetail {
  readonly experiment: Experiment;
  readonly gates: readonly Gate[];
  /** The newest analysis (effect, always-valid interval and p-value, SRM, guardrails, decision), or null. */
  readonly latestAnalysis: signals.AnalysisRecord | null;
  /**
   * Each metric's source: the last successful read, the last error (the source's own message), whether its
   * rate limit holds polls back. Signal first, then guardrails, then secondary metrics; empty before the first poll.
   */
  readonly sources: readonly SourceHealth[];
  /**
   * Its flag, when the outcome has a flag provider: the split wanted, whether it is applied ("rollback
   * pending since …" while the provider fails), the drift found at the last check. Null otherwise.
   */
  readonly flag: FlagStatus | null;
}

/** One experiment by id or key, with its gates (its own 200 newest first, then its portfolio gate). */
export async function getExperiment(deps: RuntimeDeps, caller: Caller, idOrKey: string): Promise<ExperimentDetail> {
  authorize(caller, "experiment.read");
  const experiment = await requireExperiment(deps.db, caller.principal.workspaceId, idOrKey);
  const [mine, latestAnalysis, sources, rollout] = await Promise.all([
    gates.listGatesOfExperiment(deps.db, experiment.workspaceId, experiment.id, experiment.portfolioGateId, 200),
    signals.latestAnalysis(deps.db, experiment.id),
    sourceHealth.listExperimentSourceHealth(deps.db, experiment.id, nowOf(deps)),
    flagRollouts.findRollout(deps.db, experiment.id),
  ]);
  return { experiment, gates: mine, latestAnalysis, sources, flag: rollout === null ? null : flagStatusOf(rollout) };
}

/**
 * Analyses of an experiment, oldest first: one per snapshot of its signal (the
 * newest `limit`, at most 5 000).
 *
 * @throws DomainError `not_found`.
 */
export async function listExperimentAnalyses(
  deps: RuntimeDeps,
  caller: Caller,
  idOrKey: string,
  limit = 1000,
): Promise<{ experiment: Experiment; analyses: signals.AnalysisRecord[] }> {
  authorize(caller, "experiment.read");
  const experiment = await requireExperiment(deps.db, caller.principal.workspaceId, idOrKey);
  const analyses = await signals.listAnalyses(deps.db, experiment.id, Math.min(Math.max(1, limit), 5000));
  return { experiment, analyses };
}

/**
 * Experiments of an outcome, oldest first, a page at a time (`limit` 1–200, default 50;
 * pass the page's `nextCursor` back as `cursor`).
 *
 * @throws DomainError `forbidden` (`experiment.read`); `not_found` naming the id or slug (an outcome
 *   of another workspace included); `validation_failed` (field `cursor`) for a cursor no page made.
 */
export async function listExperimentsOfOutcome(
  deps: RuntimeDeps,
  caller: Caller,
  outcomeIdOrSlug: string,
  page: PageRequest = {},
): Promise<Page<Experiment>> {
  authorize(caller, "experiment.read");
  const outcome = await requireOutcome(deps.db, caller.principal.workspaceId, outcomeIdOrSlug);
  return experiments.listExperimentsOfOutcomePage(deps.db, outcome.workspaceId, outcome.id, page);
}

/** The operation of the permissions table each direct action is. */
const EXPERIMENT_ACTION_OPERATIONS: Partial<Record<ExperimentAction, Operation>> = {
  claim: "experiment.claim",
  release: "experiment.release",
  report_built: "experiment.report_built",
  pause: "experiment.pause",
  analyse: "experiment.analyse",
};

export interface ExperimentActionInput {
  readonly action: ExperimentAction;
  readonly reason?: string | null | undefined;
  /** For `claim`: who builds it; the caller's name when absent. */
  readonly claimedBy?: string | undefined;
  /** For `report_built`: the paths the change touched. */
  readonly changedPaths?: readonly string[] | undefined;
  /** For `report_built`: the name the builder claimed under (default: the caller's name). */
  readonly builder?: string | undefined;
  /** For `report_built`: what was built, shown at the launch approval. */
  readonly build?:
    | {
        readonly summary: string;
        readonly pullRequestUrl?: string | null | undefined;
        readonly flagKey?: string | null | undefined;
      }
    | undefined;
}

/**
 * A build report under an outcome with a flag provider: the flag the runtime
 * created for the experiment must exist (its creation applied, and, when the
 * process can reach the provider, still there), and a flag key the builder
 * names must be it.
 *
 * @returns the experiment's flag key, or null when its outcome has no flag provider
 * @throws DomainError `validation_failed` (field `build.flagKey`) for another key; `flag_not_ready` naming
 *   the flag, the provider and why (being created, failing with the provider's error, deleted)
 */
async function checkBuildFlag(
  deps: RuntimeDeps,
  workspaceId: string,
  idOrKey: string,
  input: ExperimentActionInput,
): Promise<string | null> {
  const experiment = await requireExperiment(deps.db, workspaceId, idOrKey);
  const outcome = await requireOutcome(deps.db, workspaceId, experiment.outcomeId);
  const flags = flagsOf(outcome);
  if (flags === null) return null;
  const key = flagKeyOf(flags, experiment.key);
  const named = input.build?.flagKey;
  if (named !== undefined && named !== null && named !== key) {
    throw new DomainError(
      "validation_failed",
      `build.flagKey: "${named}" is not this experiment's flag; the runtime created ${key} in ${flags.provider}: wire the build to it (or leave flagKey out)`,
      { field: "build.flagKey", value: named, expected: key },
    );
  }
  const rollout = await flagRollouts.findRollout(deps.db, experiment.id);
  if (rollout === null || rollout.appliedVersion === null) {
    const why =
      rollout === null
        ? "no rollout was asked for (the hypothesis was approved before the outcome had flags: re-apply or ask an admin)"
        : flagStatusOf(rollout).summary;
    throw new DomainError(
      "flag_not_ready",
      `flag ${key} does not exist in ${flags.provider} yet: ${why}; report the build again once it exists (get_experiment_status shows the flag)`,
      { flagKey: key, provider: flags.provider, rollout: rollout === null ? null : flagStatusOf(rollout) },
    );
  }
  if (deps.flags !== undefined && deps.sources !== undefined) {
    let exists: boolean;
    try {
      const provider = await openFlagProvider(deps.db, deps.flags, deps.sources, outcome, "API", nowOf(deps));
      const served = await provider.read([key], AbortSignal.timeout(deps.flags.timeoutMs));
      exists = served.get(key)?.exists === true;
    } catch {
      // The provider cannot be read from the API now: the applied creation is the evidence.
      exists = true;
    }
    if (!exists) {
      throw new DomainError(
        "flag_not_ready",
        `flag ${key} no longer exists in ${flags.provider} (deleted by hand?); it is created again when the experiment launches, or ask an admin to restore it`,
        { flagKey: key, provider: flags.provider },
      );
    }
  }
  return key;
}

/**
 * Apply a direct action (`claim`, `release`, `report_built`, `pause`,
 * `analyse`) to an experiment. Actions that belong to a gate (`approve`,
 * `launch`, `resume`, `ship`, …) are refused here: decide the gate instead. Gates the
 * move requests (launch approval after a build, analysis review) are opened in
 * the same transaction. A builder claiming again what they hold gets the
 * experiment back unchanged (the experiment machine's rule, on every face).
 *
 * @throws DomainError `not_found`, `forbidden`, `illegal_transition`, or a guard's
 *   code (`outcome_closed`: only a pause on a closed outcome; `already_claimed`
 *   naming the holder; `forbidden_paths_touched`, `claim_required`, `not_claimant`).
 */
export async function transitionExperiment(
  deps: RuntimeDeps,
  caller: Caller,
  idOrKey: string,
  input: ExperimentActionInput,
): Promise<{ experiment: Experiment; openedGates: Gate[] }> {
  const operation = EXPERIMENT_ACTION_OPERATIONS[input.action];
  if (operation === undefined || !(DIRECT_EXPERIMENT_ACTIONS as readonly string[]).includes(input.action)) {
    throw new DomainError(
      "forbidden",
      `"${input.action}" is decided at a gate, not requested directly; direct actions are ${DIRECT_EXPERIMENT_ACTIONS.join(", ")}`,
      { action: input.action },
    );
  }
  authorize(caller, operation);
  const workspaceId = caller.principal.workspaceId;
  const flagKey = input.action === "report_built" ? await checkBuildFlag(deps, workspaceId, idOrKey, input) : null;
  let read: Experiment | null = null;
  try {
    return await inTransaction(deps.db, async (trx) => {
      const experiment = await requireExperiment(trx, workspaceId, idOrKey, { forUpdate: true });
      read = experiment;
      const outcome = await requireOutcome(trx, workspaceId, experiment.outcomeId);
      const claimedBy = input.action === "claim" ? (input.claimedBy ?? caller.principal.name) : undefined;
      const at = nowOf(deps);
      const moved = await moveExperiment(trx, caller, at, {
        experiment,
        outcome,
        action: input.action,
        context: {
          ...(input.action === "report_built" && input.builder ? { builder: input.builder } : {}),
          claimedBy: claimedBy ?? experiment.claimedBy,
          forbiddenPathsTouched:
            input.action === "report_built"
              ? matchPaths(input.changedPaths ?? [], specOf(outcome).constraints?.scope?.forbidden_paths ?? [])
              : [],
        },
        patch: {
          ...(input.action === "claim" ? { claimedBy: claimedBy ?? null } : {}),
          ...(input.action === "release" ? { claimedBy: null } : {}),
          ...(input.action === "report_built"
            ? {
                build: {
                  summary: input.build?.summary ?? input.reason ?? "",
                  pullRequestUrl: input.build?.pullRequestUrl ?? null,
                  changedPaths: [...(input.changedPaths ?? [])],
                  flagKey: flagKey ?? input.build?.flagKey ?? null,
                  reportedBy: input.builder ?? caller.principal.name,
                  reportedAt: at.toISOString(),
                },
              }
            : {}),
        },
        facts: {
          reason: input.reason ?? null,
          ...(claimedBy ? { claimedBy } : {}),
          ...(input.changedPaths ? { changedPaths: input.changedPaths } : {}),
        },
        gateContext:
          input.action === "pause" || input.action === "analyse"
            ? { action: input.action, reason: "requested", detail: input.reason ?? null, by: caller.principal.name }
            : {},
      });
      return { experiment: moved.experiment, openedGates: [...moved.gates] };
    });
  } catch (error) {
    // A refused build is worth an audit record of its own (an agent tried to ship outside its scope).
    // It is written after the transaction rolled back, on its own connection.
    const refused = read as Experiment | null;
    if (refused !== null && error instanceof DomainError && error.code === "forbidden_paths_touched") {
      await audit.insertAuditEvent(deps.db, {
        workspaceId,
        actor: auditActor(caller),
        channel: caller.channel,
        action: "experiment.build_refused",
        subjectType: "experiment",
        subjectId: refused.id,
        before: { state: refused.state },
        after: { forbiddenPaths: error.details.paths },
        requestId: caller.requestId,
      });
    }
    throw error;
  }
}

/**
 * Ask for an immediate poll of a running experiment (then its analysis),
 * without waiting for its schedule. The request is a row in Postgres, one per
 * experiment and second; the worker's outbox sweep queues it within
 * `OUTBOX_INTERVAL_MS`, under the returned job id, and keeps it until that job
 * has run. Redis is not needed here: a request made while it is down is
 * queued once it is back.
 *
 * @throws DomainError `not_found`; `illegal_transition` when the experiment is not running.
 */
export async function requestPoll(
  deps: RuntimeDeps,
  caller: Caller,
  idOrKey: string,
): Promise<{ experiment: Experiment; jobId: string }> {
  authorize(caller, "experiment.poll");
  const experiment = await requireExperiment(deps.db, caller.principal.workspaceId, idOrKey);
  if (experiment.state !== "running") {
    throw new DomainError(
      "illegal_transition",
      `experiment ${experiment.key} is ${experiment.state}; only a running experiment is polled`,
      { state: experiment.state },
    );
  }
  const requestedAt = await jobRequests.insertPollRequest(deps.db, {
    workspaceId: experiment.workspaceId,
    experimentId: experiment.id,
    at: nowOf(deps),
  });
  return { experiment, jobId: pollNowJobId(experiment.id, requestedAt) };
}
