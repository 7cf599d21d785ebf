/**
 * Experiments: read one, and request a direct lifecycle action.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import {
  analysisJson,
  DIRECT_EXPERIMENT_ACTIONS,
  experimentBrief,
  experimentJson,
  gateJson,
  getExperiment,
  listExperimentAnalyses,
  renderBriefMarkdown,
  requestPoll,
  sourceHealthJson,
  transitionExperiment,
} from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { AnalysisDto, ExperimentDto, FlagStatusDto, GateDto, PROBLEM_RESPONSES, SourceHealthDto } from "../../../dto";
import type { RouteOptions } from "../../route-options";

const IdParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 100, description: "experiment id or key" }),
});

const TransitionBody = Type.Object(
  {
    action: Type.Enum([...DIRECT_EXPERIMENT_ACTIONS], {
      description: "approve, launch, ship and the other gate decisions are made at gates, not here",
    }),
    reason: Type.Optional(Type.String({ maxLength: 2000 })),
    claimedBy: Type.Optional(
      Type.String({ minLength: 1, maxLength: 200, description: "for claim: who builds it (default: the caller)" }),
    ),
    changedPaths: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 500 }), {
        maxItems: 5000,
        description: "for report_built: paths the change touched",
      }),
    ),
    build: Type.Optional(
      Type.Object(
        {
          summary: Type.String({
            minLength: 1,
            maxLength: 4000,
            description: "what was built, for the launch approval",
          }),
          pullRequestUrl: Type.Optional(
            Type.String({ pattern: "^https?://", maxLength: 2000, description: "link to the change (http or https)" }),
          ),
          flagKey: Type.Optional(
            Type.String({ minLength: 1, maxLength: 200, description: "the feature flag that splits traffic" }),
          ),
        },
        { additionalProperties: false, description: "for report_built: the build report shown at the launch gate" },
      ),
    ),
  },
  { additionalProperties: false },
);

const AnalysesQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000, default: 1000 })),
});

const experimentRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
  app.get(
    "/v1/experiments/:id",
    {
      config: { operations: ["experiment.read"] },
      schema: {
        tags: ["experiments"],
        summary: "Get an experiment with its gates and latest analysis",
        params: IdParams,
        response: {
          200: Type.Object({
            experiment: ExperimentDto,
            gates: Type.Array(GateDto),
            latestAnalysis: Type.Union([AnalysisDto, Type.Null()]),
            sources: Type.Array(SourceHealthDto, {
              description:
                "each metric's source: last successful read, last error, whether its rate limit holds polls back",
            }),
            flag: Type.Union([FlagStatusDto, Type.Null()], {
              description: "its feature flag when the outcome has a flag provider (docs/flags.md); null otherwise",
            }),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const detail = await getExperiment(deps, request.caller, request.params.id);
      return {
        experiment: experimentJson(detail.experiment),
        gates: detail.gates.map(gateJson),
        latestAnalysis: detail.latestAnalysis === null ? null : analysisJson(detail.latestAnalysis),
        sources: detail.sources.map(sourceHealthJson),
        flag: detail.flag,
      };
    },
  );

  app.get(
    "/v1/experiments/:id/brief",
    {
      config: { operations: ["experiment.read"] },
      schema: {
        tags: ["experiments"],
        summary: "The build brief of an experiment",
        description:
          "Hypothesis, mechanism, arms and weights, how to log assignment and exposure, the measurement and rollout " +
          "plans, allowed and forbidden paths, the acceptance checklist and the next step; also as Markdown.",
        params: IdParams,
        response: {
          200: Type.Object({
            brief: Type.Object({}, { additionalProperties: true }),
            markdown: Type.String(),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const brief = await experimentBrief(deps, request.caller, request.params.id);
      return { brief: brief as unknown as Record<string, never>, markdown: renderBriefMarkdown(brief) };
    },
  );

  app.get(
    "/v1/experiments/:id/analyses",
    {
      config: { operations: ["experiment.read"] },
      schema: {
        tags: ["experiments"],
        summary: "The analyses of an experiment, oldest first (one per snapshot of its signal)",
        params: IdParams,
        querystring: AnalysesQuery,
        response: { 200: Type.Object({ items: Type.Array(AnalysisDto) }), ...PROBLEM_RESPONSES },
      },
    },
    async (request) => {
      const { analyses } = await listExperimentAnalyses(deps, request.caller, request.params.id, request.query.limit);
      return { items: analyses.map(analysisJson) };
    },
  );

  app.post(
    "/v1/experiments/:id/poll",
    {
      config: { operations: ["experiment.poll"] },
      schema: {
        tags: ["experiments"],
        summary: "Poll a running experiment's signal now (then analyse it)",
        description:
          "Asks for a poll now instead of waiting for the schedule: the request is stored, and the worker queues it " +
          "within its outbox interval (2 s by default) under `jobId`, also while Redis is down (once it is back).",
        params: IdParams,
        response: {
          202: Type.Object({
            jobId: Type.String({ description: "the job the poll runs as (one per experiment and second)" }),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request, reply) => {
      const { jobId } = await requestPoll(deps, request.caller, request.params.id);
      return reply.code(202).send({ jobId });
    },
  );

  app.post(
    "/v1/experiments/:id/transitions",
    {
      config: {
        operations: [
          "experiment.claim",
          "experiment.release",
          "experiment.report_built",
          "experiment.pause",
          "experiment.analyse",
        ],
      },
      schema: {
        tags: ["experiments"],
        summary: "Request a lifecycle action",
        description:
          "claim (approved → building), release (building → approved), report_built (building → built, opens the " +
          "launch gate with the build report), pause (opens an analysis review: resume or roll back), analyse (opens " +
          "the analysis review). Resuming a paused experiment is a decision at its analysis review.",
        params: IdParams,
        body: TransitionBody,
        response: {
          200: Type.Object({ experiment: ExperimentDto, openedGates: Type.Array(GateDto) }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const result = await transitionExperiment(deps, request.caller, request.params.id, request.body);
      return { experiment: experimentJson(result.experiment), openedGates: result.openedGates.map(gateJson) };
    },
  );
};

export default experimentRoutes;
