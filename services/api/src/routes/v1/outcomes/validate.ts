/**
 * `POST /v1/outcomes/validate`: check an outcome.yaml without storing it, with
 * the same diagnostics as `outcome-runtime validate` (the dashboard's editor
 * validates live with it).
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { MAX_OUTCOME_BYTES, validateOutcomeSource } from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { DiagnosticDto, PROBLEM_RESPONSES } from "../../../dto";
import type { RouteOptions } from "../../route-options";
import { OUTCOME_MEDIA_TYPES } from "./apply";

const validateRoute: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
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
      config: { operations: ["outcome.validate"] },
      schema: {
        tags: ["outcomes"],
        summary: "Validate an outcome without applying it",
        description:
          "Send the outcome.yaml like to POST /v1/outcomes. Answers 200 whether it is valid or not: " +
          "`errors[]` lists every mistake with line, column, code, message and hint, sources included " +
          "(their SQL, the secrets they name, and the source itself when the API can reach it); " +
          "`warnings[]` the sources it could not check. Nothing is stored.",
        querystring: Type.Object({
          file: Type.Optional(Type.String({ maxLength: 255, description: "file name to use in error positions" })),
        }),
        body: Type.String({ description: "the outcome document (YAML or JSON)" }),
        response: {
          200: Type.Object({
            valid: Type.Boolean(),
            errors: Type.Array(DiagnosticDto),
            warnings: Type.Array(DiagnosticDto),
          }),
          413: Type.Ref("Problem"),
          415: Type.Ref("Problem"),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const result = await validateOutcomeSource(
        deps,
        request.caller,
        request.body,
        request.query.file ?? "outcome.yaml",
      );
      return {
        valid: result.valid,
        errors: result.errors.map((e) => ({ ...e })),
        warnings: result.warnings.map((w) => ({ ...w })),
      };
    },
  );
};

export default validateRoute;
