/**
 * Gates: the inbox, one gate, and the decision.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import {
  decideGate,
  experimentJson,
  GATE_DECISIONS,
  GATE_KINDS,
  GATE_STATES,
  gateJson,
  getGate,
  listGates,
} from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { ExperimentDto, GateDto, PROBLEM_RESPONSES } from "../../../dto";
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
    hypotheses: Type.Optional(
      Type.Record(Type.String({ format: "uuid" }), Type.Union([Type.Literal("approve"), Type.Literal("reject")]), {
        description:
          "portfolio_review with decision approve: a decision per hypothesis (experiment id → approve | reject); " +
          "hypotheses left out are approved",
      }),
    ),
  },
  { additionalProperties: false },
);

const Options = Type.Array(
  Type.Object({
    decision: Type.String(),
    label: Type.String(),
    effect: Type.String(),
    tone: Type.Union([Type.Literal("primary"), Type.Literal("danger"), Type.Literal("neutral")]),
  }),
  { description: "the decisions the gate takes now (empty once decided)" },
);

const GateDetailDto = Type.Object({
  gate: GateDto,
  experiments: Type.Array(ExperimentDto),
  contextPackage: Type.Object(
    { kind: Type.Enum([...GATE_KINDS]) },
    {
      additionalProperties: true,
      description:
        "what the person deciding needs: portfolio_review → hypotheses (prediction, effort, risk, paths); " +
        "launch_approval → build report and arms; analysis_review → trigger, latest analysis (effect, always-valid " +
        "interval and p-value, SRM, guardrails, sample per arm, duration) and chartUrl; agent_request → the " +
        "question and who asked; achievement_review → evidence (goal, latest, the window's mean and its one-sided " +
        "bound, points, window), the outcome's series since activation, the experiments shipped since, and chartUrl",
    },
  ),
  options: Options,
});

const gateRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps, publicUrl }) => {
  app.get(
    "/v1/gates",
    {
      config: { operations: ["gate.read"] },
      schema: {
        tags: ["gates"],
        summary: "List gates (the inbox with assignee and status=pending)",
        description:
          "`assignee` keeps the gates a person may decide (an assignee, the backup, or whom the gate escalated to); " +
          "`assignee=me` is the caller. `GET /v1/gates?assignee=me&status=pending` is the caller's inbox.",
        querystring: Type.Object({
          status: Type.Optional(Type.Enum([...GATE_STATES])),
          kind: Type.Optional(Type.Enum([...GATE_KINDS])),
          assignee: Type.Optional(Type.String({ minLength: 1, maxLength: 320, description: "an email, or `me`" })),
          outcomeId: Type.Optional(Type.String({ format: "uuid" })),
          experimentId: Type.Optional(Type.String({ format: "uuid" })),
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
      config: { operations: ["gate.read"] },
      schema: {
        tags: ["gates"],
        summary: "Get a gate with its context package and the decisions it takes now",
        params: IdParams,
        response: { 200: GateDetailDto, ...PROBLEM_RESPONSES },
      },
    },
    async (request) => {
      const detail = await getGate(deps, request.caller, request.params.id, { publicUrl });
      return {
        gate: gateJson(detail.gate),
        experiments: detail.experiments.map(experimentJson),
        contextPackage: detail.contextPackage as unknown as { kind: (typeof GATE_KINDS)[number] },
        options: [...detail.options],
      };
    },
  );

  app.post(
    "/v1/gates/:id/decision",
    {
      config: { operations: ["gate.decide"] },
      schema: {
        tags: ["gates"],
        summary: "Decide a gate",
        description:
          "Applied exactly once: of concurrent decisions one wins; the others get 409 gate_already_decided " +
          "with the winning decision in `details.decision`. Every email link of the gate dies with the decision. " +
          "A concluding analysis decision (ship, iterate, roll_back) writes the experiment's learning, whose LLM " +
          "summary the worker then makes.",
        params: IdParams,
        body: DecisionBody,
        response: {
          200: Type.Object({
            gate: GateDto,
            experiments: Type.Array(ExperimentDto),
            learningId: Type.Union([Type.String(), Type.Null()]),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const result = await decideGate(deps, request.caller, request.params.id, {
        decision: request.body.decision as Parameters<typeof decideGate>[3]["decision"],
        reason: request.body.reason ?? null,
        hypotheses: request.body.hypotheses,
      });
      return {
        gate: gateJson(result.gate),
        experiments: result.experiments.map(experimentJson),
        learningId: result.learningId,
      };
    },
  );
};

export default gateRoutes;
