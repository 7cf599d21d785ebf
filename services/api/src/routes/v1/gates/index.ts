/**
 * Gates: the inbox, one gate, and the decision.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { decideGate, GATE_DECISIONS, GATE_KINDS, GATE_STATES, getGate, listGates } from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { ExperimentDto, experimentJson, GateDto, gateJson, PROBLEM_RESPONSES } from "../../../dto";
import type { RouteOptions } from "../../route-options";

const IdParams = Type.Object({ id: Type.String({ format: "uuid", description: "gate id" }) });

const DecisionBody = Type.Object(
  {
    decision: Type.Enum([...new Set(Object.values(GATE_DECISIONS).flatMap((d) => Object.keys(d)))], {
      description: Object.entries(GATE_DECISIONS)
        .map(([kind, d]) => `${kind}: ${Object.keys(d).join(" | ")}`)
        .join("; "),
    }),
    reason: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { additionalProperties: false },
);

const gateRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
  app.get(
    "/v1/gates",
    {
      schema: {
        tags: ["gates"],
        summary: "List gates",
        querystring: Type.Object({
          status: Type.Optional(Type.Enum([...GATE_STATES])),
          kind: Type.Optional(Type.Enum([...GATE_KINDS])),
          cursor: Type.Optional(Type.String({ maxLength: 200 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
        }),
        response: {
          200: Type.Object({ items: Type.Array(GateDto), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const page = await listGates(deps, request.caller, request.query);
      return { items: page.items.map(gateJson), nextCursor: page.nextCursor };
    },
  );

  app.get(
    "/v1/gates/:id",
    {
      schema: {
        tags: ["gates"],
        summary: "Get a gate and the experiments it decides",
        params: IdParams,
        response: { 200: Type.Object({ gate: GateDto, experiments: Type.Array(ExperimentDto) }), ...PROBLEM_RESPONSES },
      },
    },
    async (request) => {
      const detail = await getGate(deps, request.caller, request.params.id);
      return { gate: gateJson(detail.gate), experiments: detail.experiments.map(experimentJson) };
    },
  );

  app.post(
    "/v1/gates/:id/decision",
    {
      schema: {
        tags: ["gates"],
        summary: "Decide a gate",
        description:
          "Applied exactly once: of concurrent decisions one wins; the others get 409 gate_already_decided " +
          "with the winning decision in `details.decision`.",
        params: IdParams,
        body: DecisionBody,
        response: {
          200: Type.Object({ gate: GateDto, experiments: Type.Array(ExperimentDto) }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const result = await decideGate(deps, request.caller, request.params.id, {
        decision: request.body.decision as Parameters<typeof decideGate>[3]["decision"],
        reason: request.body.reason ?? null,
      });
      return { gate: gateJson(result.gate), experiments: result.experiments.map(experimentJson) };
    },
  );
};

export default gateRoutes;
