/**
 * `POST /v1/outcomes`: apply an outcome.yaml. The body is read as text
 * whatever its type (YAML, or JSON, which is YAML too), so validation errors
 * point at the line and column of the document the client sent.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { applyOutcome, MAX_OUTCOME_BYTES, outcomeJson } from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { DiagnosticDto, OutcomeDto, PROBLEM_RESPONSES } from "../../../dto";
import type { RouteOptions } from "../../route-options";

export const OUTCOME_MEDIA_TYPES = [
  "application/yaml",
  "application/x-yaml",
  "text/yaml",
  "text/x-yaml",
  "text/plain",
  "application/json",
];

const applyRoute: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
  // Encapsulated: only this plugin's route reads bodies as text.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    OUTCOME_MEDIA_TYPES,
    { parseAs: "string", bodyLimit: MAX_OUTCOME_BYTES },
    (_req, body, done) => done(null, body),
  );

  app.post(
    "/v1/outcomes",
    {
      config: { operations: ["outcome.apply"] },
      schema: {
        tags: ["outcomes"],
        summary: "Apply an outcome",
        description:
          "Create the outcome, or a new revision when its content changed; a no-op when it did not. " +
          "Send the outcome.yaml as `application/yaml` (or the same document as JSON). " +
          "Errors come back as problem details whose `errors[]` carry file, line, column, pointer, message and hint.",
        querystring: Type.Object({
          file: Type.Optional(Type.String({ maxLength: 255, description: "file name to use in error positions" })),
        }),
        body: Type.String({ description: "the outcome document (YAML or JSON)" }),
        response: {
          200: Type.Object({
            status: Type.Union([Type.Literal("revised"), Type.Literal("unchanged")]),
            outcome: OutcomeDto,
            warnings: Type.Array(DiagnosticDto, { description: "sources the API could not check" }),
          }),
          201: Type.Object({
            status: Type.Literal("created"),
            outcome: OutcomeDto,
            warnings: Type.Array(DiagnosticDto, { description: "sources the API could not check" }),
          }),
          413: Type.Ref("Problem"),
          415: Type.Ref("Problem"),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request, reply) => {
      const result = await applyOutcome(deps, request.caller, {
        source: request.body,
        file: request.query.file ?? "outcome.yaml",
      });
      const body = {
        status: result.status,
        outcome: outcomeJson(result.outcome),
        warnings: result.warnings.map((w) => ({ ...w })),
      };
      return result.status === "created"
        ? reply.code(201).send({ ...body, status: "created" as const })
        : reply.code(200).send({ ...body, status: result.status });
    },
  );
};

export default applyRoute;
