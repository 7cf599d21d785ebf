/**
 * Outcomes: list, read, activate, abandon, reopen; and hypotheses proposed for one.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import {
  activateOutcome,
  experimentJson,
  GATE_KINDS,
  GATE_STATES,
  gateJson,
  generatePortfolio,
  getOutcome,
  LATEST_REVISIONS,
  listExperimentsOfOutcome,
  listOutcomes,
  listRevisionsOfOutcome,
  MAX_SERIES_POINTS,
  OUTCOME_STATES,
  outcomeJson,
  outcomeSeries,
  type PortfolioResult,
  proposeExperimentIdempotently,
  revisionJson,
  sourceHealthJson,
  summaryJson,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import { Type } from "typebox";
import {
  ArmDto,
  ExperimentDto,
  GateDto,
  OutcomeDto,
  OutcomeSummaryDto,
  PROBLEM_RESPONSES,
  PredictionDto,
  RevisionDto,
  SourceHealthDto,
} from "../../../dto";
import type { RouteOptions } from "../../route-options";
import { LearningSearchDto } from "../learnings";

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100, description: "outcome id or slug" }) });

/** `cursor` and `limit` of a paged list, as every list of the API takes them. */
const PageQuery = Type.Object({
  cursor: Type.Optional(Type.String({ maxLength: 200, description: "the `nextCursor` of the previous page" })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
});

const page = <T extends Parameters<typeof Type.Array>[0]>(item: T) =>
  Type.Object({
    items: Type.Array(item),
    nextCursor: Type.Union([Type.String(), Type.Null()], {
      description: "pass back as `cursor`; null on the last page",
    }),
  });

const GateCountsDto = Type.Record(Type.String(), Type.Record(Type.String(), Type.Integer({ minimum: 1 })), {
  description:
    `gates of the outcome by kind (${GATE_KINDS.join(", ")}), then status (${GATE_STATES.join(", ")}); kinds and ` +
    "statuses with none are absent. List the gates with GET /v1/gates?outcomeId=… (status and kind filter them).",
});
const Level = Type.Union([Type.Literal("low"), Type.Literal("medium"), Type.Literal("high")]);

const HypothesisBody = Type.Object(
  {
    title: Type.String({ minLength: 3, maxLength: 200 }),
    statement: Type.String({ minLength: 10, maxLength: 5000, description: "the falsifiable hypothesis" }),
    mechanism: Type.Optional(Type.String({ maxLength: 5000 })),
    prediction: Type.Optional(PredictionDto),
    measurementPlan: Type.Optional(Type.String({ maxLength: 5000 })),
    rolloutPlan: Type.Optional(Type.String({ maxLength: 5000 })),
    effort: Type.Optional(Level),
    risk: Type.Optional(Level),
    touchedPaths: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 500 }), { maxItems: 500 })),
    arms: Type.Optional(Type.Array(ArmDto, { minItems: 2, maxItems: 10 })),
    key: Type.Optional(Type.String({ pattern: "^[a-z0-9]+(?:-[a-z0-9]+)*$", maxLength: 63 })),
  },
  { additionalProperties: false },
);

const ReasonBody = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 2000 })) },
  { additionalProperties: false },
);

const PortfolioDto = Type.Object(
  {
    experiments: Type.Array(ExperimentDto),
    gate: Type.Union([GateDto, Type.Null()], { description: "the portfolio_review gate they joined" }),
    source: Type.String({ description: "`llm:<model>`, `rules`, or `llm:<model>+rules` when some were replaced" }),
    fallbackReason: Type.Union([Type.String(), Type.Null()], {
      description: "why the rules engine answered instead of the LLM (e.g. budget_exhausted), if it did",
    }),
    costUsd: Type.Number(),
    dropped: Type.Array(
      Type.Object({
        title: Type.String(),
        mechanismKey: Type.String(),
        reason: Type.String({ description: "forbidden_paths, failed_before or duplicate_mechanism" }),
        detail: Type.String(),
      }),
    ),
    learningsConsidered: Type.Array(Type.String()),
    learningSearch: LearningSearchDto,
  },
  { description: "hypotheses generated for the outcome" },
);

function portfolioJson(p: PortfolioResult) {
  return {
    experiments: p.proposals.map((x) => experimentJson(x.experiment)),
    gate: p.proposals[0] ? gateJson(p.proposals[0].gate) : null,
    source: p.source,
    fallbackReason: p.fallbackReason,
    costUsd: p.costUsd,
    dropped: p.dropped.map((d) => ({ ...d })),
    learningsConsidered: [...p.learningsConsidered],
    learningSearch: { ...p.learningSearch },
  };
}

const outcomeRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps, gateway }) => {
  app.get(
    "/v1/outcomes",
    {
      config: { operations: ["outcome.read"] },
      schema: {
        tags: ["outcomes"],
        summary: "List outcomes",
        querystring: Type.Object({
          state: Type.Optional(Type.Enum([...OUTCOME_STATES])),
          cursor: Type.Optional(Type.String({ maxLength: 200 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
        }),
        response: {
          200: Type.Object({
            items: Type.Array(OutcomeSummaryDto),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const page = await listOutcomes(deps, request.caller, request.query);
      return { items: page.items.map(summaryJson), nextCursor: page.nextCursor };
    },
  );

  app.get(
    "/v1/outcomes/:id",
    {
      config: { operations: ["outcome.read"] },
      schema: {
        tags: ["outcomes"],
        summary: "Get an outcome with its newest revisions and the counts of its experiments and gates",
        description:
          "Bounded whatever the number of experiments, gates and revisions: the outcome's spec plus under 3 KB of " +
          "counts, the newest revisions and the polling plan (under 20 KB for the demo's outcome with its 99 " +
          "experiments). The lists are paged endpoints of their own, " +
          "GET /v1/outcomes/:id/experiments, GET /v1/gates?outcomeId=… and GET /v1/outcomes/:id/revisions.",
        params: IdParams,
        response: {
          200: Type.Object({
            outcome: OutcomeDto,
            experimentCounts: Type.Record(Type.String(), Type.Integer(), {
              description: "experiments by state (states with none are absent)",
            }),
            pendingGates: Type.Integer({ description: "gates waiting for a decision" }),
            gateCounts: GateCountsDto,
            latestRevisions: Type.Array(RevisionDto, {
              maxItems: LATEST_REVISIONS,
              description: `the newest ${LATEST_REVISIONS} revisions, newest first; outcome.revision is how many there are`,
            }),
            polling: Type.Object(
              {
                requestedSeconds: Type.Number({ description: "signal.poll_interval, seconds" }),
                effectiveSeconds: Type.Number({ description: "the interval the worker uses, seconds" }),
                note: Type.Union([Type.String(), Type.Null()], { description: "why it was stretched, if it was" }),
              },
              { description: "how often the signal is polled after the connector's budget (e.g. Mixpanel's)" },
            ),
            sources: Type.Array(SourceHealthDto, {
              description:
                "each metric's source across the running experiments, and the outcome's own series: newest read, " +
                "newest error, the throttle of a rate limit, failing experiments",
            }),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const detail = await getOutcome(deps, request.caller, request.params.id);
      return {
        ...summaryJson(detail),
        gateCounts: detail.gateCounts,
        latestRevisions: detail.latestRevisions.map(revisionJson),
        polling: { ...detail.polling },
        sources: detail.sources.map(sourceHealthJson),
      };
    },
  );

  app.get(
    "/v1/outcomes/:id/revisions",
    {
      config: { operations: ["outcome.read"] },
      schema: {
        tags: ["outcomes"],
        summary: "List the revisions of an outcome, newest first",
        params: IdParams,
        querystring: PageQuery,
        response: { 200: page(RevisionDto), ...PROBLEM_RESPONSES },
      },
    },
    async (request) => {
      const list = await listRevisionsOfOutcome(deps, request.caller, request.params.id, request.query);
      return { items: list.items.map(revisionJson), nextCursor: list.nextCursor };
    },
  );

  app.get(
    "/v1/outcomes/:id/series",
    {
      config: { operations: ["outcome.read"] },
      schema: {
        tags: ["outcomes"],
        summary: "The outcome's own signal over time, with its goal, baseline and horizon",
        description: `Oldest first; at most ${MAX_SERIES_POINTS} points (a longer series is thinned evenly, keeping the newest).`,
        params: IdParams,
        response: {
          200: Type.Object({
            metric: Type.String(),
            kind: Type.Union([Type.Literal("proportion"), Type.Literal("mean"), Type.Literal("ratio")]),
            points: Type.Array(
              Type.Object({
                ts: Type.String({ format: "date-time" }),
                value: Type.Number({ description: "the signal's level (a fraction for proportions)" }),
              }),
            ),
            goal: Type.Union([Type.Number(), Type.Null()], { description: "the level the target asks for" }),
            baseline: Type.Union([Type.Number(), Type.Null()]),
            horizonEnd: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
            current: Type.Union([Type.Number(), Type.Null()], { description: "the latest value" }),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => outcomeSeries(deps, request.caller, request.params.id),
  );

  app.post(
    "/v1/outcomes/:id/activate",
    {
      config: { operations: ["outcome.activate"] },
      schema: {
        tags: ["outcomes"],
        summary: "Activate a draft outcome; its first portfolio of hypotheses is proposed",
        description:
          "The outcome becomes active, then three hypotheses are generated (by the LLM when one is configured, " +
          "otherwise by the rules engine) and join a pending portfolio_review gate. The activation stands even if " +
          "the portfolio fails (`portfolioError`); POST /v1/outcomes/:id/hypotheses tries again.",
        params: IdParams,
        body: Type.Optional(ReasonBody),
        response: {
          200: Type.Object({
            outcome: OutcomeDto,
            portfolio: Type.Union([PortfolioDto, Type.Null()]),
            portfolioError: Type.Union([Type.String(), Type.Null()]),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const result = await activateOutcome(
        { ...deps, gateway },
        request.caller,
        request.params.id,
        request.body?.reason ?? null,
      );
      if (result.portfolioError !== null) {
        request.log.warn({ err: result.portfolioError }, "the first portfolio could not be generated");
      }
      return {
        outcome: outcomeJson(result.outcome),
        portfolio: result.portfolio === null ? null : portfolioJson(result.portfolio),
        portfolioError: result.portfolioError?.message ?? null,
      };
    },
  );

  app.post(
    "/v1/outcomes/:id/abandon",
    {
      config: { operations: ["outcome.abandon"] },
      schema: {
        tags: ["outcomes"],
        summary: "Abandon an outcome",
        params: IdParams,
        body: Type.Optional(ReasonBody),
        response: { 200: Type.Object({ outcome: OutcomeDto }), ...PROBLEM_RESPONSES },
      },
    },
    async (request) => {
      const outcome = await transitionOutcome(
        deps,
        request.caller,
        request.params.id,
        "abandon",
        request.body?.reason ?? null,
      );
      return { outcome: outcomeJson(outcome) };
    },
  );

  app.post(
    "/v1/outcomes/:id/reopen",
    {
      config: { operations: ["outcome.reopen"] },
      schema: {
        tags: ["outcomes"],
        summary: "Reopen an achieved outcome",
        description:
          "An achieved outcome becomes active again: its signal is polled, its horizon counts and it takes " +
          "revisions. Only from `achieved` (409 `illegal_transition` otherwise). Agents may not call this.",
        params: IdParams,
        body: Type.Optional(ReasonBody),
        response: { 200: Type.Object({ outcome: OutcomeDto }), ...PROBLEM_RESPONSES },
      },
    },
    async (request) => {
      const outcome = await transitionOutcome(
        deps,
        request.caller,
        request.params.id,
        "reopen",
        request.body?.reason ?? null,
      );
      return { outcome: outcomeJson(outcome) };
    },
  );

  app.post(
    "/v1/outcomes/:id/hypotheses",
    {
      config: { operations: ["portfolio.generate"] },
      schema: {
        tags: ["outcomes"],
        summary: "Generate a new portfolio of three hypotheses for an active outcome",
        description:
          "Past learnings are retrieved and given to the generator; hypotheses touching forbidden paths, repeating a " +
          "failed one or repeating a mechanism are dropped (and audited) and replaced. They join the pending " +
          "portfolio_review gate. Agents may not call this.",
        params: IdParams,
        response: { 201: PortfolioDto, ...PROBLEM_RESPONSES },
      },
    },
    async (request, reply) => {
      const portfolio = await generatePortfolio({ ...deps, gateway }, request.caller, request.params.id);
      return reply.code(201).send(portfolioJson(portfolio));
    },
  );

  app.get(
    "/v1/outcomes/:id/experiments",
    {
      config: { operations: ["experiment.read"] },
      schema: {
        tags: ["experiments"],
        summary: "List the experiments of an outcome, oldest first",
        params: IdParams,
        querystring: PageQuery,
        response: { 200: page(ExperimentDto), ...PROBLEM_RESPONSES },
      },
    },
    async (request) => {
      const list = await listExperimentsOfOutcome(deps, request.caller, request.params.id, request.query);
      return { items: list.items.map(experimentJson), nextCursor: list.nextCursor };
    },
  );

  app.post(
    "/v1/outcomes/:id/experiments",
    {
      config: { operations: ["experiment.propose"] },
      schema: {
        tags: ["experiments"],
        summary: "Propose a hypothesis",
        description:
          "A human-submitted hypothesis for an active outcome. It joins the outcome's pending portfolio_review gate, " +
          "opening one if none is pending. Send an `Idempotency-Key` header to make retries safe.",
        params: IdParams,
        headers: Type.Object({ "idempotency-key": Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) }),
        body: HypothesisBody,
        response: {
          201: Type.Object({ experiment: ExperimentDto, gate: GateDto, gateOpened: Type.Boolean() }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request, reply) => {
      const result = await proposeExperimentIdempotently(
        deps,
        request.caller,
        request.params.id,
        request.body,
        request.headers["idempotency-key"],
        (r) => ({ experiment: experimentJson(r.experiment), gate: gateJson(r.gate), gateOpened: r.gateOpened }),
      );
      if (result.replayed) reply.header("idempotent-replayed", "true");
      return reply.code(201).send(result.body);
    },
  );
};

export default outcomeRoutes;
