/**
 * `POST /v1/outcomes/validate`: check an outcome.yaml without storing it, with
 * the same diagnostics as `outcome-runtime validate` (the dashboard's editor
 * validates live with it).
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { MAX_OUTCOME_BYTES, validateOutcomeSource } from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { PROBLEM_RESPONSES } from "../../../dto";
import type { RouteOptions } from "../../route-options";
import { OUTCOME_MEDIA_TYPES } from "./apply";

const DiagnosticDto = Type.Object({
  file: Type.String(),
  line: Type.Integer({ description: "1-based" }),
  column: Type.Integer({ description: "1-based, in UTF-16 code units" }),
  pointer: Type.String({ description: "JSON pointer to the value concerned" }),
  code: Type.String({ description: "stable diagnostic code, e.g. unknown_key" }),
  message: Type.String(),
  hint: Type.Optional(Type.String()),
});

const validateRoute: FastifyPluginAsyncTypebox<RouteOptions> = async (app) => {
  // Encapsulated: only this plugin's route reads bodies as text.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    OUTCOME_MEDIA_TYPES,
    { parseAs: "string", bodyLimit: MAX_OUTCOME_BYTES },
    (_req, body, done) => done(null, body),
  );

  app.post(
    "/v1/outcomes/validate",
    {
      schema: {
        tags: ["outcomes"],
        summary: "Validate an outcome without applying it",
        description:
          "Send the outcome.yaml like to POST /v1/outcomes. Answers 200 whether it is valid or not: " +
          "`errors[]` lists every mistake with line, column, code, message and hint. Nothing is stored.",
        querystring: Type.Object({
          file: Type.Optional(Type.String({ maxLength: 255, description: "file name to use in error positions" })),
        }),
        body: Type.String({ description: "the outcome document (YAML or JSON)" }),
        response: {
          200: Type.Object({ valid: Type.Boolean(), errors: Type.Array(DiagnosticDto) }),
          413: Type.Ref("Problem"),
          415: Type.Ref("Problem"),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const result = validateOutcomeSource(request.body, request.query.file ?? "outcome.yaml");
      return { valid: result.valid, errors: result.errors.map((e) => ({ ...e })) };
    },
  );
};

export default validateRoute;
