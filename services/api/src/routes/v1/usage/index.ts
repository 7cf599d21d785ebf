/**
 * `GET /v1/usage/llm`: what the LLM gateway spent, against the budgets.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { type LlmBudgets, llmUsage } from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { PROBLEM_RESPONSES } from "../../../dto";
import type { RouteOptions } from "../../route-options";

const Budget = (description: string) =>
  Type.Object(
    {
      spentUsd: Type.Number({ description: "US dollars" }),
      budgetUsd: Type.Union([Type.Number(), Type.Null()], { description: "the cap in US dollars; null is no cap" }),
    },
    { description },
  );

const UsageDto = Type.Object({
  month: Budget("the workspace this calendar month (UTC) against LLM_MONTHLY_BUDGET_USD"),
  today: Budget("the caller today (UTC) against LLM_DAILY_USER_BUDGET_USD, which is per user"),
  byOperation: Type.Array(
    Type.Object({
      operation: Type.String(),
      calls: Type.Integer(),
      spentUsd: Type.Number(),
      cacheHits: Type.Integer(),
      fallbacks: Type.Integer({ description: "runs the rules engine answered instead of the LLM" }),
    }),
    { description: "this month, the costliest operation first" },
  ),
  recent: Type.Array(
    Type.Object({
      at: Type.String({ format: "date-time" }),
      operation: Type.String(),
      model: Type.String(),
      source: Type.String({ description: "`llm:<model>` or `rules`" }),
      costUsd: Type.Number(),
      inputTokens: Type.Integer(),
      outputTokens: Type.Integer(),
      cacheHit: Type.Boolean(),
      fallbackReason: Type.Union([Type.String(), Type.Null()]),
    }),
    { description: "the newest runs of the workspace" },
  ),
});

const usageRoutes: FastifyPluginAsyncTypebox<RouteOptions & { llmBudgets: LlmBudgets }> = async (
  app,
  { deps, llmBudgets },
) => {
  app.get(
    "/v1/usage/llm",
    {
      config: { operations: ["usage.read"] },
      schema: {
        tags: ["usage"],
        summary: "LLM spend against the budgets, by operation, and the latest runs",
        querystring: Type.Object({
          limit: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 200, default: 50, description: "how many recent runs" }),
          ),
        }),
        response: { 200: UsageDto, ...PROBLEM_RESPONSES },
      },
    },
    async (request) => llmUsage(deps, request.caller, llmBudgets, { recentLimit: request.query.limit }),
  );
};

export default usageRoutes;
