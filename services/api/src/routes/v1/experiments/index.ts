/**
 * Experiments: read one, and request a direct lifecycle action.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { DIRECT_EXPERIMENT_ACTIONS, getExperiment, transitionExperiment } from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { ExperimentDto, experimentJson, GateDto, gateJson, PROBLEM_RESPONSES } from "../../../dto";
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
  },
  { additionalProperties: false },
);

const experimentRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
  app.get(
    "/v1/experiments/:id",
    {
      schema: {
        tags: ["experiments"],
        summary: "Get an experiment with its gates",
        params: IdParams,
        response: { 200: Type.Object({ experiment: ExperimentDto, gates: Type.Array(GateDto) }), ...PROBLEM_RESPONSES },
      },
    },
    async (request) => {
      const detail = await getExperiment(deps, request.caller, request.params.id);
      return { experiment: experimentJson(detail.experiment), gates: detail.gates.map(gateJson) };
    },
  );

  app.post(
    "/v1/experiments/:id/transitions",
    {
      schema: {
        tags: ["experiments"],
        summary: "Request a lifecycle action",
        description:
          "claim (approved → building), release (building → approved), report_built (building → built, opens the " +
          "launch gate), pause, resume, analyse (opens the analysis gate).",
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
