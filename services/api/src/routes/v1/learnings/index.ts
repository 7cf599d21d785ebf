/**
 * The learning library: "what do we know about X".
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { listLearnings } from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { PROBLEM_RESPONSES } from "../../../dto";
import type { RouteOptions } from "../../route-options";

const LearningDto = Type.Object({
  id: Type.String(),
  statement: Type.String(),
  decision: Type.String(),
  effect: Type.Union([Type.Number(), Type.Null()], { description: "absolute effect, treatment − control" }),
  ciLow: Type.Union([Type.Number(), Type.Null()]),
  ciHigh: Type.Union([Type.Number(), Type.Null()]),
  tags: Type.Array(Type.String()),
  outcomeId: Type.String(),
  experimentId: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: "date-time" }),
  rank: Type.Number({ description: "full-text rank against the query (0 without one)" }),
  links: Type.Array(Type.Object({ label: Type.String(), url: Type.String() }), {
    description: "links kept with the learning, e.g. the pull request",
  }),
});

const learningRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
  app.get(
    "/v1/learnings",
    {
      config: { operations: ["learning.read"] },
      schema: {
        tags: ["learnings"],
        summary: "Search or list the learnings",
        description:
          "With `q`, ranked by Postgres full-text relevance (any word may match); without, newest first. " +
          "`outcome` and `tag` narrow the list.",
        querystring: Type.Object({
          q: Type.Optional(Type.String({ maxLength: 500 })),
          outcome: Type.Optional(Type.String({ maxLength: 100, description: "outcome id or slug" })),
          tag: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, default: 10 })),
        }),
        response: { 200: Type.Object({ items: Type.Array(LearningDto) }), ...PROBLEM_RESPONSES },
      },
    },
    async (request) => ({
      items: await listLearnings(deps, request.caller, {
        query: request.query.q,
        outcome: request.query.outcome,
        tag: request.query.tag,
        limit: request.query.limit,
      }),
    }),
  );
};

export default learningRoutes;
