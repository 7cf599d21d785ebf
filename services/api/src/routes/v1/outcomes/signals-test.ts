/**
 * `POST /v1/outcomes/signals-test`: a dry run of an outcome's reads, for the
 * dashboard's outcome editor and `outcome-runtime signals test --api`. Each
 * metric's connector runs its read once against the real source, with the
 * caller's workspace's secrets and the variables the operator lets it use,
 * and the answer shows what the worker would store. Nothing is stored. Under
 * the stricter limit of the expensive routes.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { MAX_DRY_RUN_EXPERIMENTS, MAX_OUTCOME_BYTES, testOutcomeSignals } from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { PROBLEM_RESPONSES } from "../../../dto";
import type { RouteOptions } from "../../route-options";

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

const DryRunErrorDto = Type.Object(
  {
    code: Type.String({ description: "a connector error code: query_failed, invalid_config, source_refused, ..." }),
    message: Type.String({ description: "what went wrong, with the source's own message" }),
    field: Nullable(Type.String({ description: "the setting concerned, e.g. signal.connector.query" })),
    line: Nullable(Type.Integer({ description: "the line in the setting's text (a query's line)" })),
    offset: Nullable(Type.Integer({ description: "the character offset in the setting's text" })),
    location: Nullable(
      Type.Object({ line: Type.Integer(), column: Type.Integer() }, { description: "where that is in the file" }),
    ),
  },
  { $id: "DryRunError" },
);

const DryRunRowDto = Type.Object({
  arm: Type.String(),
  units: Type.Number(),
  sum: Type.Number(),
  sum_sq: Type.Number(),
  mean: Nullable(Type.Number({ description: "sum / units (a ratio: sum / den_sum); null when that is 0" })),
  ts: Nullable(Type.String({ format: "date-time", description: "the aggregate's as-of time; null: the window end" })),
});

const DryRunMetricDto = Type.Object({
  path: Type.String({ description: "the metric, e.g. signal or constraints.guardrails[0]" }),
  type: Type.String({ description: "the connector type" }),
  form: Type.Union([Type.Literal("batched"), Type.Literal("single")], {
    description: "batched: every experiment in one request; single: one request per experiment",
  }),
  source: Nullable(Type.String({ description: "the connector's describe(): no secret" })),
  queryMs: Nullable(Type.Integer({ description: "the reads' wall time, ms" })),
  cost: Nullable(
    Type.Object({
      bytesProcessed: Type.Number(),
      maximumBytesBilled: Type.Optional(Type.Number()),
      summary: Type.String(),
    }),
  ),
  experiments: Type.Array(
    Type.Object({
      experiment: Type.String(),
      rows: Nullable(Type.Array(DryRunRowDto)),
      error: Nullable(Type.Ref("DryRunError")),
    }),
  ),
  error: Nullable(Type.Ref("DryRunError")),
});

const signalsTestRoute: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
  app.addSchema(DryRunErrorDto);
  app.post(
    "/v1/outcomes/signals-test",
    {
      config: { operations: ["outcome.validate"] },
      schema: {
        tags: ["outcomes"],
        summary: "Dry run: read an outcome's signals once, as the worker would",
        description:
          "Runs each metric's connector read (the signal, the guardrails, the secondary metrics) once against the " +
          "real source, with this workspace's secrets and the operator's source variables it may use, and answers " +
          "the rows the worker would store per experiment and arm, the query time, the form and the cost estimate " +
          "where the source gives one. A failed read is in its metric's `error` (200, `ok: false`); a file with " +
          "errors is 422 `outcome_invalid`. Nothing is stored. Rate-limited like the LLM routes.",
        querystring: Type.Object({
          file: Type.Optional(Type.String({ maxLength: 255, description: "file name to use in error positions" })),
        }),
        body: Type.Object(
          {
            source: Type.String({ maxLength: MAX_OUTCOME_BYTES, description: "the outcome document (YAML or JSON)" }),
            experiments: Type.Optional(
              Type.Array(Type.String({ minLength: 1, maxLength: 200 }), {
                maxItems: MAX_DRY_RUN_EXPERIMENTS,
                description: "experiment keys to read; none: a placeholder key no source has rows for",
              }),
            ),
            from: Type.Optional(
              Type.String({ format: "date-time", description: "window start; default 7 days before `to`" }),
            ),
            to: Type.Optional(Type.String({ format: "date-time", description: "window end; default now" })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            file: Type.String(),
            from: Type.String({ format: "date-time" }),
            to: Type.String({ format: "date-time" }),
            experiments: Type.Array(Type.String()),
            placeholder: Type.Boolean({
              description: "true when no experiment was given and the placeholder was read",
            }),
            arms: Type.Array(Type.String()),
            ok: Type.Boolean({ description: "every metric and experiment read without error" }),
            metrics: Type.Array(DryRunMetricDto),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const { source, experiments, from, to } = request.body;
      return testOutcomeSignals(deps, request.caller, {
        source,
        file: request.query.file ?? "outcome.yaml",
        ...(experiments === undefined ? {} : { experiments }),
        ...(from === undefined ? {} : { from: new Date(from) }),
        ...(to === undefined ? {} : { to: new Date(to) }),
      });
    },
  );
};

export default signalsTestRoute;
