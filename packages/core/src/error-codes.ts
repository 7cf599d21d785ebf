/**
 * The registry of error codes: one stable snake_case string per failure a
 * client can see, with the HTTP status it maps to and what it means. Adapters
 * (REST, MCP, CLI) never invent codes of their own; `docs/api.md` lists these.
 */
export const ERROR_CODES = {
  validation_failed: { status: 400, title: "The request is not valid" },
  invalid_decision: { status: 422, title: "The decision is not valid for this gate" },
  outcome_invalid: { status: 422, title: "The outcome file has errors" },
  illegal_transition: { status: 409, title: "The action is not allowed in the current state" },
  gate_already_decided: { status: 409, title: "The gate has already been decided" },
  gate_not_assignee: { status: 403, title: "You are not an assignee of this gate" },
  agents_cannot_decide: { status: 403, title: "Agents cannot decide gates" },
  separation_of_duties: {
    status: 403,
    title: "The person who revised the outcome may not approve its launch alone",
  },
  not_outcome_owner: { status: 403, title: "Only the outcome's owner or an admin may revise it" },
  launch_gate_not_approved: { status: 409, title: "The launch gate has not been approved" },
  flag_not_ready: { status: 409, title: "The experiment's feature flag does not exist in the flag provider yet" },
  forbidden_paths_touched: { status: 422, title: "The change touches forbidden paths" },
  not_claimant: { status: 403, title: "Only the builder who claimed the experiment can report it" },
  experiment_key_taken: { status: 409, title: "The experiment key is taken" },
  conflict: { status: 409, title: "The request conflicts with the current data" },
  claim_required: { status: 409, title: "The experiment must be claimed first" },
  already_claimed: { status: 409, title: "Another builder has claimed the experiment" },
  question_pending: { status: 409, title: "A question about this experiment is already waiting for an answer" },
  target_not_met: { status: 409, title: "The outcome's target has not been met" },
  horizon_not_reached: { status: 409, title: "The outcome's horizon has not been reached" },
  outcome_closed: { status: 409, title: "The outcome is closed and can no longer change" },
  outcome_not_active: { status: 409, title: "The outcome is not active" },
  idempotency_key_reused: { status: 422, title: "The idempotency key was used for a different request" },
  unauthenticated: { status: 401, title: "Authentication is required" },
  forbidden: { status: 403, title: "You are not allowed to do this" },
  not_found: { status: 404, title: "Not found" },
  payload_too_large: { status: 413, title: "The request body is too large" },
  unsupported_media_type: { status: 415, title: "Unsupported content type" },
  rate_limited: { status: 429, title: "Too many requests" },
  secrets_disabled: { status: 409, title: "This installation has no key to store secrets with" },
  secret_unreadable: { status: 409, title: "A stored secret cannot be opened with the installation's keys" },
  service_unavailable: { status: 503, title: "A dependency is unavailable" },
  internal_error: { status: 500, title: "Internal error" },
} as const satisfies Record<string, { status: number; title: string }>;

/** A stable error code, e.g. `gate_already_decided`. */
export type ErrorCode = keyof typeof ERROR_CODES;
