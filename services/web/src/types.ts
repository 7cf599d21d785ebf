/**
 * The shapes the dashboard reads from the public API: aliases of the types
 * generated from the API's OpenAPI document (`packages/spec/src/api.types.ts`,
 * written by `pnpm gen:types` from `schemas/openapi.json`), so a change to a
 * route's response schema is a type error here, not a silent mismatch.
 *
 * A few fields the API documents as open objects (the outcome's normalised
 * spec, an analysis's per-arm estimates and guardrail results) are refined
 * below to the members the pages read; every other field is the generated one.
 * A gate's context package is the domain's own type (`GateContextPackage`).
 */
import type { GateContextPackage } from "@outcome-runtime/core";
import type { components, paths } from "@outcome-runtime/spec/api-types";

type Schemas = components["schemas"];

/** `T` with the members of `R` in place of its own. */
type Refine<T, R> = Omit<T, keyof R> & R;

/** The JSON body of the `status` response of `method` on `path`, e.g. `ResponseJson<"/v1/gates", "get">`. */
type ResponseJson<
  Path extends keyof paths,
  Method extends "get" | "post" | "put" | "patch" | "delete",
  Status extends number = 200,
> = paths[Path][Method] extends { responses: { [S in Status]: { content: { "application/json": infer Body } } } }
  ? Body
  : never;

export type SessionInfo = ResponseJson<"/session", "get">;

/** RFC 9457 problem details; one the dashboard makes itself (the server unreachable) has no request id. */
export type Problem = Pick<Schemas["Problem"], "type" | "title" | "status" | "detail" | "code" | "errors" | "details"> &
  Partial<Pick<Schemas["Problem"], "requestId">>;

/** The members of the normalised outcome spec (an open object in the API) the pages read. */
interface OutcomeSpec {
  /** `kind`: proportion, mean or ratio (Σnumerator / Σdenominator over the units). */
  signal?: { metric?: string; kind?: string; baseline?: number };
  target?: { value?: number; direction?: "increase" | "decrease"; relative?: boolean };
  horizon?: { end_date?: string; seconds?: number };
  [key: string]: unknown;
}

export type Outcome = Refine<Schemas["Outcome"], { spec: OutcomeSpec }>;
export type OutcomeSummary = Refine<Schemas["OutcomeSummary"], { outcome: Outcome }>;
export type OutcomeList = Refine<ResponseJson<"/v1/outcomes", "get">, { items: OutcomeSummary[] }>;
export type OutcomeDetail = Refine<ResponseJson<"/v1/outcomes/{id}", "get">, { outcome: Outcome }>;
export type OutcomeSeries = ResponseJson<"/v1/outcomes/{id}/series", "get">;
export type RevisionList = ResponseJson<"/v1/outcomes/{id}/revisions", "get">;

export type Experiment = Schemas["Experiment"];
export type SourceHealth = Schemas["SourceHealth"];
export type ExperimentList = ResponseJson<"/v1/outcomes/{id}/experiments", "get">;
export type Arm = Experiment["arms"][number];

/** The members of an arm's estimate (an open object in the API) the pages read. */
interface ArmEstimate {
  units?: number;
  mean?: number | null;
  variance?: number | null;
  [key: string]: unknown;
}

/** One treatment's comparison with control (an open object in the API's `details`) the pages read. */
interface Comparison {
  arm: string;
  effect?: number | null;
  ci?: [number, number] | null;
  relativeLift?: number | null;
  pValue?: number | null;
  /** Holm-adjusted across the treatments; present with more than one treatment. */
  adjustedPValue?: number | null;
  /** Present when the source gave a pre-exposure covariate: the CUPED slope and the variance reduction (a fraction). */
  cuped?: { theta?: number | null; varianceReduction?: number | null };
  warnings?: string[];
  [key: string]: unknown;
}

/** The members of a guardrail result (an open object in the API) the pages read. */
interface GuardrailResult {
  metric?: string;
  arm?: string;
  verdict?: string;
  harm?: number | null;
  harmCi?: [number, number] | null;
  pValue?: number | null;
  margin?: number;
  relative?: boolean;
  [key: string]: unknown;
}

export type Analysis = Refine<
  Schemas["Analysis"],
  {
    arms: Record<string, ArmEstimate>;
    guardrails: GuardrailResult[];
    details?: {
      srm?: { alarm?: boolean; pValue?: number | null; sequentialAlarm?: boolean; sequentialPValue?: number | null };
      elapsedSeconds?: number;
      comparisons?: Comparison[];
      secondary?: (Comparison & { metric: string; kind?: string; direction?: "increase" | "decrease" })[];
      [key: string]: unknown;
    };
  }
>;

export type GateDecision = Schemas["GateDecision"];
export type Gate = Schemas["Gate"];
export type GateList = ResponseJson<"/v1/gates", "get">;
export type ExperimentDetail = Refine<ResponseJson<"/v1/experiments/{id}", "get">, { latestAnalysis: Analysis | null }>;

/** What the person deciding a gate needs, per gate kind (documented as an open object keyed by `kind`). */
export type ContextPackage = GateContextPackage;
export type GateDetail = Refine<ResponseJson<"/v1/gates/{id}", "get">, { contextPackage: ContextPackage }>;

export type LearningList = ResponseJson<"/v1/learnings", "get">;
export type AuditList = ResponseJson<"/v1/audit", "get">;
export type AuditEvent = AuditList["items"][number];

export type SpecError = Schemas["Diagnostic"];
export type ValidateResult = ResponseJson<"/v1/outcomes/validate", "post">;

export type LlmUsage = ResponseJson<"/v1/usage/llm", "get">;
export type Spend = LlmUsage["month"];

/** How people may sign in here (`GET /auth/config`): email links, single sign-on, API keys (always). */
export type AuthConfig = ResponseJson<"/auth/config", "get">;
export type EmailLinkAnswer = ResponseJson<"/auth/email-link", "post", 202>;
export type CreatedWorkspace = ResponseJson<"/workspaces", "post", 201>;
export type SignedOutEverywhere = ResponseJson<"/session/all", "delete">;
/** One of the member's workspaces, with their role there (the switcher's options). */
export type Workspace = NonNullable<SessionInfo["workspace"]>;

export type MemberList = ResponseJson<"/v1/members", "get">;
export type Member = MemberList["members"][number];
export type Invitation = MemberList["invitations"][number];
export type MemberRole = Member["role"];
export type InvitationCreated = ResponseJson<"/v1/members/invitations", "post", 201>;
export type MemberRemoved = ResponseJson<"/v1/members/{id}", "delete">;

export type ApiKeyList = ResponseJson<"/v1/keys", "get">;
export type ApiKey = ApiKeyList["keys"][number];
export type ApiKeyRole = ApiKey["role"];
export type ApiKeyScope = ApiKey["scopes"][number];
export type ApiKeyCreated = ResponseJson<"/v1/keys", "post", 201>;
