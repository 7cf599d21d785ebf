/**
 * The REST API's JSON as the CLI reads it: aliases of the types generated from
 * the API's OpenAPI document (`packages/spec/src/api.types.ts`, written by
 * `pnpm gen:types` from `schemas/openapi.json`), so a change to a route's
 * response schema shows up here as a type error, not as a silent mismatch.
 */
import type { GateContextPackage } from "@outcome-runtime/core";
import type { components, paths } from "@outcome-runtime/spec/api-types";

type Schemas = components["schemas"];

/**
 * The JSON body of the `status` response of `method` on `path`, e.g.
 * `ResponseJson<"/v1/gates", "get">`.
 */
export type ResponseJson<
  Path extends keyof paths,
  Method extends "get" | "post" | "put" | "patch" | "delete",
  Status extends number = 200,
> = paths[Path][Method] extends { responses: { [S in Status]: { content: { "application/json": infer Body } } } }
  ? Body
  : never;

export type ExperimentJson = Schemas["Experiment"];
export type GateJson = Schemas["Gate"];
export type RevisionJson = Schemas["Revision"];
export type OutcomeDetailJson = ResponseJson<"/v1/outcomes/{id}", "get">;
export type AnalysisJson = Schemas["Analysis"];

export type ExperimentDetailJson = ResponseJson<"/v1/experiments/{id}", "get">;
export type BriefJson = ResponseJson<"/v1/experiments/{id}/brief", "get">;
export type TransitionJson = ResponseJson<"/v1/experiments/{id}/transitions", "post">;
export type DecisionResultJson = ResponseJson<"/v1/gates/{id}/decision", "post">;

/**
 * `GET /v1/gates/{id}`. The API documents the context package as an open
 * object keyed by its `kind`; its full shape is the domain's own JSON-safe
 * `GateContextPackage`, which the CLI renders.
 */
export type GateDetailJson = Omit<ResponseJson<"/v1/gates/{id}", "get">, "contextPackage"> & {
  readonly contextPackage: GateContextPackage;
};
