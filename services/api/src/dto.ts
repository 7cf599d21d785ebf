/**
 * The public API's shapes (camelCase JSON, ISO-8601 times): the schemas the
 * routes validate and serialise with, and the OpenAPI document publishes.
 * The records are mapped to this JSON once, by the runtime (`outcomeJson`,
 * `experimentJson`, `gateJson`, `analysisJson`…, which the MCP tools
 * project); a mapper that drifts from its schema fails the handler's type.
 * Storage shapes never reach clients directly.
 */

import {
  DECISION_CHANNELS,
  EXPERIMENT_STATES,
  GATE_KINDS,
  GATE_STATES,
  OUTCOME_STATES,
  ROLES,
} from "@outcome-runtime/runtime";
import { type TEnum, type TSchema, Type } from "typebox";

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const DateTime = Type.String({ format: "date-time" });
export const literals = <const T extends readonly string[]>(values: T): TEnum<[...T]> =>
  Type.Enum([...values]) as unknown as TEnum<[...T]>;

export const ProblemDto = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String(),
    requestId: Type.String(),
    errors: Type.Optional(Type.Array(Type.Unknown())),
    details: Type.Optional(Type.Object({}, { additionalProperties: true })),
  },
  { $id: "Problem", additionalProperties: true, description: "RFC 9457 problem details" },
);

export const OutcomeDto = Type.Object(
  {
    id: Type.String({ format: "uuid" }),
    slug: Type.String({ description: "the `id` of the outcome.yaml" }),
    name: Type.String(),
    owner: Type.String(),
    state: literals(OUTCOME_STATES),
    revision: Type.Integer({ minimum: 1 }),
    contentHash: Type.String(),
    spec: Type.Object({}, { additionalProperties: true, description: "normalised outcome spec (fractions, seconds)" }),
    createdAt: DateTime,
    updatedAt: DateTime,
    activatedAt: Nullable(DateTime),
    closedAt: Nullable(DateTime),
  },
  { $id: "Outcome" },
);

export const OutcomeSummaryDto = Type.Object(
  {
    outcome: OutcomeDto,
    experimentCounts: Type.Record(Type.String(), Type.Integer()),
    pendingGates: Type.Integer(),
  },
  { $id: "OutcomeSummary" },
);

export const RevisionDto = Type.Object(
  {
    revision: Type.Integer(),
    contentHash: Type.String(),
    createdBy: Type.String(),
    createdAt: DateTime,
  },
  { $id: "Revision" },
);

export const ArmDto = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 64, pattern: "^[a-z0-9][a-z0-9_-]*$" }),
  weight: Type.Number({ exclusiveMinimum: 0, maximum: 1, description: "fraction of traffic" }),
});

const Level = literals(["low", "medium", "high"] as const);

export const PredictionDto = Type.Object({
  direction: literals(["increase", "decrease"] as const),
  effect: Type.Number({ description: "expected effect; a fraction when relative" }),
  relative: Type.Boolean(),
});

export const ExperimentDto = Type.Object(
  {
    id: Type.String({ format: "uuid" }),
    outcomeId: Type.String({ format: "uuid" }),
    key: Type.String(),
    title: Type.String(),
    statement: Type.String(),
    mechanism: Type.String(),
    prediction: Nullable(PredictionDto),
    measurementPlan: Type.String(),
    rolloutPlan: Type.String(),
    effort: Nullable(Level),
    risk: Nullable(Level),
    touchedPaths: Type.Array(Type.String()),
    arms: Type.Array(ArmDto),
    source: Type.String(),
    state: literals(EXPERIMENT_STATES),
    claimedBy: Nullable(Type.String()),
    portfolioGateId: Nullable(Type.String()),
    createdAt: DateTime,
    updatedAt: DateTime,
    launchedAt: Nullable(DateTime),
    statsPlan: Nullable(
      Type.Object(
        {
          tau2: Type.Number({ description: "mixture variance τ² of the mSPRT (squared metric units)" }),
          tau2Source: Type.String({ description: "how τ² was chosen" }),
          alpha: Type.Number(),
          power: Type.Number(),
          mde: Nullable(Type.Number({ description: "absolute effect the plan is sized for" })),
          fixedPerArm: Nullable(
            Type.Number({ description: "units per arm of a fixed-horizon test of the same power" }),
          ),
          sequentialPerArm: Nullable(Type.Number({ description: "planned units per arm (always-valid test)" })),
          baseline: Type.Number(),
          variance: Type.Number(),
        },
        { $id: "StatsPlan", description: "the statistical plan, fixed at the first analysis" },
      ),
    ),
    polling: Type.Object({
      lastPolledAt: Nullable(DateTime),
      failures: Type.Integer({ description: "consecutive failed polls" }),
      error: Nullable(
        Type.Object(
          { code: Type.String(), message: Type.String(), at: Type.String() },
          { description: "last poll error" },
        ),
      ),
    }),
    build: Nullable(
      Type.Object(
        {
          summary: Type.String(),
          pullRequestUrl: Nullable(Type.String()),
          changedPaths: Type.Array(Type.String()),
          flagKey: Nullable(Type.String()),
          reportedBy: Type.String(),
          reportedAt: Type.String(),
        },
        { $id: "Build", description: "what the builder reported with report_built" },
      ),
    ),
  },
  { $id: "Experiment" },
);

const Interval = Nullable(Type.Array(Type.Number(), { minItems: 2, maxItems: 2 }));

/** An experiment's feature flag, when its outcome has a flag provider (docs/flags.md). */
export const FlagStatusDto = Type.Object(
  {
    provider: Type.String({ description: "unleash, launchdarkly or growthbook" }),
    flagKey: Type.String(),
    status: Type.Union([Type.Literal("applied"), Type.Literal("pending"), Type.Literal("waiting_for_approval")], {
      description:
        "applied: the provider serves the split; pending: being written, or failing (see lastError) and retried " +
        "with backoff; waiting_for_approval: the provider holds the change for an approval (LaunchDarkly)",
    }),
    weights: Type.Record(Type.String(), Type.Number(), { description: "the split wanted now: fractions by arm" }),
    reason: Type.String({ description: "prepare, launch, resume, extend, pause, ship, roll_back or iterate" }),
    version: Type.Integer(),
    requestedAt: DateTime,
    appliedAt: Nullable(DateTime),
    pendingSince: Type.Union([DateTime, Type.Null()], { description: "while not applied: when it was asked for" }),
    rollback: Type.Boolean({ description: "true when the split sends everyone to control" }),
    attempts: Type.Integer({ description: "failed attempts at this version" }),
    nextAttemptAt: Nullable(DateTime),
    lastError: Nullable(Type.Object({ code: Type.String(), message: Type.String() })),
    drift: Nullable(
      Type.Record(Type.String(), Type.Unknown(), {
        description: "what the last drift check found (kind, expected, served, detail); null when none",
      }),
    ),
    driftAt: Nullable(DateTime),
    observedAt: Nullable(DateTime),
    summary: Type.String({ description: 'one line for people, e.g. "rollback (pause) pending since …"' }),
  },
  { $id: "FlagStatus", additionalProperties: false },
);

export const SourceHealthDto = Type.Object(
  {
    metric: Type.String(),
    role: Type.Union([
      Type.Literal("primary"),
      Type.Literal("guardrail"),
      Type.Literal("secondary"),
      Type.Literal("outcome"),
    ]),
    connector: Nullable(Type.String({ description: "the connector type; null before the first read" })),
    source: Nullable(Type.String({ description: "the connector's one-line description (never a secret)" })),
    status: Type.Union(
      [Type.Literal("ok"), Type.Literal("failing"), Type.Literal("throttled"), Type.Literal("waiting")],
      {
        description:
          "ok: the last read succeeded; failing: it failed; throttled: the source's rate limit holds reads back " +
          "until throttledUntil (the next read catches up from polledUntil); waiting: never read yet",
      },
    ),
    lastReadAt: Nullable(DateTime),
    polledUntil: Nullable(DateTime),
    lastError: Nullable(
      Type.Object(
        { code: Type.String(), message: Type.String({ description: "the source's own message" }), at: DateTime },
        { description: "the newest failed read (kept after later successes)" },
      ),
    ),
    throttledUntil: Nullable(DateTime),
    throttleNote: Nullable(Type.String()),
    experiments: Type.Optional(Type.Integer({ description: "on an outcome: running experiments read through it" })),
    failingExperiments: Type.Optional(
      Type.Integer({ description: "on an outcome: of those, how many failed their last read" }),
    ),
  },
  { $id: "SourceHealth", description: "how one metric's source is doing" },
);

export const AnalysisDto = Type.Object(
  {
    ts: DateTime,
    arms: Type.Record(Type.String(), Type.Object({}, { additionalProperties: true })),
    effect: Nullable(Type.Number({ description: "treatment − control, absolute" })),
    ci: Interval,
    relativeLift: Nullable(Type.Number({ description: "effect relative to control (a fraction)" })),
    pValue: Nullable(Type.Number({ description: "always-valid p-value" })),
    srmPValue: Nullable(Type.Number({ description: "chi-square SRM p-value" })),
    guardrails: Type.Array(Type.Object({}, { additionalProperties: true })),
    decision: Type.Object(
      { action: Type.String(), reason: Type.String(), detail: Type.String() },
      { additionalProperties: true },
    ),
    details: Type.Object({}, { additionalProperties: true }),
  },
  { $id: "Analysis" },
);

export const GateDto = Type.Object(
  {
    id: Type.String({ format: "uuid" }),
    outcomeId: Type.String({ format: "uuid" }),
    experimentId: Nullable(Type.String()),
    kind: literals(GATE_KINDS),
    status: literals(GATE_STATES),
    assignees: Type.Array(Type.String()),
    backup: Nullable(Type.String()),
    slaSeconds: Type.Integer(),
    dueAt: DateTime,
    createdAt: DateTime,
    context: Type.Object({}, { additionalProperties: true, description: "why the gate was opened" }),
    onExpiry: Type.Union([Type.Literal("escalate"), Type.Literal("expire")], {
      description: "what the end of the SLA does: escalate to the backup (or the owner), or expire the gate",
    }),
    remindAt: Type.String({ format: "date-time", description: "when the reminder is due (half the SLA)" }),
    remindedAt: Nullable(Type.String({ format: "date-time" })),
    escalatedAt: Nullable(Type.String({ format: "date-time" })),
    escalatedTo: Nullable(Type.String({ description: "the backup, or the owner when there is none" })),
    decision: Nullable(
      Type.Object(
        {
          decision: Type.String(),
          reason: Nullable(Type.String()),
          decidedBy: Type.String(),
          channel: literals(DECISION_CHANNELS),
          decidedAt: DateTime,
          detail: Nullable(
            Type.Object({}, { additionalProperties: true, description: "e.g. { approved, rejected } experiment ids" }),
          ),
        },
        { $id: "GateDecision" },
      ),
    ),
  },
  { $id: "Gate" },
);

export const RoleDto = literals(ROLES);

/** Error responses every authenticated route may give. */
export const PROBLEM_RESPONSES = {
  400: Type.Ref("Problem"),
  401: Type.Ref("Problem"),
  403: Type.Ref("Problem"),
  404: Type.Ref("Problem"),
  409: Type.Ref("Problem"),
  422: Type.Ref("Problem"),
  429: Type.Ref("Problem"),
  503: Type.Ref("Problem"),
} as const;

/** One diagnostic of an outcome file (`outcome-runtime validate` prints the same). */
export const DiagnosticDto = Type.Object(
  {
    file: Type.String(),
    line: Type.Integer({ description: "1-based" }),
    column: Type.Integer({ description: "1-based, in UTF-16 code units" }),
    pointer: Type.String({ description: "JSON pointer to the value concerned" }),
    code: Type.String({ description: "stable diagnostic code, e.g. unknown_key" }),
    message: Type.String(),
    hint: Type.Optional(Type.String()),
  },
  { $id: "Diagnostic" },
);
