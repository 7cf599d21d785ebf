/**
 * `POST /v1/outcomes/draft`: an outcome.yaml drafted from one sentence.
 * Nothing is stored; the caller writes the file, fills in the todos and
 * applies it.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { draftOutcome, type Gateway, MAX_DRAFT_SENTENCE_LENGTH, type RuntimeDeps } from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { PROBLEM_RESPONSES } from "../../../dto";

interface DraftRouteOptions {
  readonly deps: RuntimeDeps;
  readonly gateway: Gateway;
}

const draftRoute: FastifyPluginAsyncTypebox<DraftRouteOptions> = async (app, { deps, gateway }) => {
  app.post(
    "/v1/outcomes/draft",
    {
      config: { operations: ["outcome.draft"] },
      schema: {
        tags: ["outcomes"],
        summary: "Draft an outcome from a sentence",
        description:
          "Drafts an outcome.yaml from one sentence with the `draft_outcome` LLM operation, or the offline rules " +
          "engine when no LLM is configured or it fails. The YAML always passes validation; `# TODO:` comments and " +
          "`todos` list what to fill in (owner, SQL, approvers). A sentence that cannot be read is a 400 " +
          "`validation_failed` saying what was missing.",
        body: Type.Object(
          {
            sentence: Type.String({
              minLength: 1,
              maxLength: MAX_DRAFT_SENTENCE_LENGTH,
              description: 'e.g. "Cut checkout abandonment from 68% to 60% in 6 weeks"',
            }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            yaml: Type.String({ description: "the drafted outcome.yaml, with `# TODO:` comments" }),
            todos: Type.Array(
              Type.Object({
                path: Type.String({ description: "dotted path of the field, e.g. signal.connector.query" }),
                note: Type.String(),
              }),
            ),
            source: Type.String({ description: "`llm:<model>` or `rules`" }),
            fallbackReason: Type.Union([Type.String(), Type.Null()], {
              description: "why the rules engine drafted instead of the LLM, if it did",
            }),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const result = await draftOutcome({ ...deps, gateway }, request.caller, { sentence: request.body.sentence });
      return { yaml: result.yaml, todos: result.todos, source: result.source, fallbackReason: result.fallbackReason };
    },
  );
};

export default draftRoute;
