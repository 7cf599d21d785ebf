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
  rank: Type.Number({
    description:
      "relevance to the query, higher first (0 without one): ts_rank in a full-text search, the fused score in a hybrid one",
  }),
  links: Type.Array(Type.Object({ label: Type.String(), url: Type.String() }), {
    description: "links kept with the learning, e.g. the pull request",
  }),
});

/** What ranked a search of learnings (`hybrid` or `full_text`) and why. */
export const LearningSearchDto = Type.Object(
  {
    search: Type.Union([Type.Literal("hybrid"), Type.Literal("full_text")], {
      description:
        "hybrid: full text and vector similarity (pgvector), fused by reciprocal rank; full_text: words only",
    }),
    fallbackReason: Type.Union(
      [
        Type.Literal("pgvector_unavailable"),
        Type.Literal("no_embedding_model"),
        Type.Literal("embedding_failed"),
        Type.Null(),
      ],
      { description: "why full text; null when hybrid" },
    ),
    note: Type.String({ description: "one sentence: what ranked the answer, or why full text and the fix" }),
  },
  { description: "how the learnings were searched" },
);

const learningRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
  app.get(
    "/v1/learnings",
    {
      config: { operations: ["learning.read"] },
      schema: {
        tags: ["learnings"],
        summary: "Search or list the learnings",
        description:
          "With `q`, ranked by relevance: any word may match (Postgres full text) and, where pgvector and an " +
          "embedding model are configured, the meaning too (hybrid ranking); `search` says which was used and why. " +
          "Without `q`, newest first (`search` null). `outcome` and `tag` narrow the list.",
        querystring: Type.Object({
          q: Type.Optional(Type.String({ maxLength: 500 })),
          outcome: Type.Optional(Type.String({ maxLength: 100, description: "outcome id or slug" })),
          tag: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, default: 10 })),
        }),
        response: {
          200: Type.Object({
            items: Type.Array(LearningDto),
            search: Type.Union([LearningSearchDto, Type.Null()]),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) =>
      listLearnings(deps, request.caller, {
        query: request.query.q,
        outcome: request.query.outcome,
        tag: request.query.tag,
        limit: request.query.limit,
      }),
  );
};

export default learningRoutes;
