/**
 * Row types of the database, written once next to the migrations that create
 * them. Only repositories see these; they map rows to the domain records of
 * `@outcome-runtime/core`.
 */
import type { ColumnType, Generated, JSONColumnType } from "kysely";

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
type Json<T extends object | null = object> = JSONColumnType<T, string, string>;

interface SettingsTable {
  key: string;
  value: Json;
  updated_at: Timestamp;
}

interface WorkspacesTable {
  id: Generated<string>;
  slug: string;
  name: string;
  created_at: Timestamp;
  settings: ColumnType<Record<string, unknown>, string | undefined, string>;
}

interface ApiKeysTable {
  id: Generated<string>;
  workspace_id: string;
  name: string;
  role: string;
  prefix: string;
  key_hash: string;
  created_by: string;
  created_at: Timestamp;
  last_used_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
  /** ⊆ {read, write, admin}, at least one; `admin` only on admin keys (CHECK). */
  scopes: string[];
  /** The member who owns the key (2026-12-19T01-00-members); null for agents' and bootstrap keys. */
  member_id: ColumnType<string | null, string | null | undefined, string | null>;
}

/** A person of the installation (2026-12-19T01-00-members): email lowercased and unique. */
interface MembersTable {
  id: Generated<string>;
  email: string;
  name: Generated<string>;
  installation_admin: Generated<boolean>;
  created_at: Timestamp;
  created_by: string;
  disabled_at: NullableTimestamp;
  last_sign_in_at: NullableTimestamp;
}

/** A member's role in one workspace. */
interface WorkspaceMembersTable {
  workspace_id: string;
  member_id: string;
  role: string;
  added_by: string;
  added_at: Timestamp;
}

/** An invitation of an address to a workspace: the link's token stored only as its SHA-256. */
interface InvitationsTable {
  id: Generated<string>;
  workspace_id: string;
  email: string;
  role: string;
  token_hash: string;
  invited_by: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  accepted_at: NullableTimestamp;
  accepted_by: string | null;
  revoked_at: NullableTimestamp;
  /** The link was shown to the inviter (no mail sent): accepting it starts no session. */
  link_shown: Generated<boolean>;
}

interface WorkspaceSecretsTable {
  id: Generated<string>;
  workspace_id: string;
  name: string;
  description: Generated<string>;
  /** AES-256-GCM: 12-byte IV, 16-byte tag, then the ciphertext. Never the value. */
  ciphertext: Buffer;
  key_id: string;
  version: Generated<number>;
  created_by: string;
  created_at: Timestamp;
  updated_by: string;
  updated_at: Timestamp;
  last_used_at: NullableTimestamp;
}

export interface OutcomesTable {
  id: Generated<string>;
  workspace_id: string;
  slug: string;
  name: string;
  owner: string;
  state: string;
  revision: number;
  content_hash: string;
  spec: Json<Record<string, unknown>>;
  created_at: Timestamp;
  updated_at: Timestamp;
  activated_at: NullableTimestamp;
  closed_at: NullableTimestamp;
}

export interface OutcomeRevisionsTable {
  id: Generated<string>;
  workspace_id: string;
  outcome_id: string;
  revision: number;
  content_hash: string;
  source: string;
  spec: Json<Record<string, unknown>>;
  created_by: string;
  created_at: Timestamp;
}

export interface ExperimentsTable {
  id: Generated<string>;
  workspace_id: string;
  outcome_id: string;
  key: string;
  title: string;
  statement: string;
  mechanism: Generated<string>;
  prediction: ColumnType<unknown, string | null | undefined, string | null>;
  measurement_plan: Generated<string>;
  rollout_plan: Generated<string>;
  effort: string | null;
  risk: string | null;
  touched_paths: ColumnType<string[], string[] | undefined, string[]>;
  arms: Json<{ name: string; weight: number }[]>;
  source: string;
  state: string;
  claimed_by: string | null;
  portfolio_gate_id: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  launched_at: NullableTimestamp;
  stats_plan: ColumnType<unknown, string | null | undefined, string | null>;
  last_polled_at: NullableTimestamp;
  poll_error: ColumnType<unknown, string | null | undefined, string | null>;
  poll_failures: ColumnType<number, number | undefined, number>;
  build: ColumnType<unknown, string | null | undefined, string | null>;
}

export interface GatesTable {
  id: Generated<string>;
  workspace_id: string;
  outcome_id: string;
  experiment_id: string | null;
  kind: string;
  status: string;
  assignees: ColumnType<string[], string[] | undefined, string[]>;
  backup: string | null;
  sla_seconds: number;
  due_at: Timestamp;
  decision: string | null;
  reason: string | null;
  decided_by: string | null;
  decided_channel: string | null;
  decided_at: NullableTimestamp;
  created_at: Timestamp;
  context: ColumnType<Record<string, unknown>, string | undefined, string>;
  on_expiry: ColumnType<string, string | undefined, string>;
  remind_at: Timestamp;
  reminded_at: NullableTimestamp;
  escalated_at: NullableTimestamp;
  escalated_to: string | null;
  sla_scheduled_at: NullableTimestamp;
  decision_detail: ColumnType<unknown, string | null | undefined, string | null>;
}

export interface SignalSeriesTable {
  id: Generated<string>;
  workspace_id: string;
  outcome_id: string;
  experiment_id: string | null;
  metric: string;
  role: string;
  kind: string;
  created_at: Timestamp;
  polled_until: NullableTimestamp;
  last_polled_at: NullableTimestamp;
  /** The connector type reading the series (`postgres`, `prometheus`, …); null before its first read. */
  connector: string | null;
  /** The connector's one-line description (never a secret). */
  source: string | null;
  last_read_at: NullableTimestamp;
  last_error_at: NullableTimestamp;
  last_error_code: string | null;
  last_error_message: string | null;
  /** No request is sent for the series before this (the source's rate limit). */
  throttled_until: NullableTimestamp;
  throttle_note: string | null;
}

interface SignalPointsTable {
  series_id: string;
  arm: string;
  ts: Timestamp;
  workspace_id: string;
  units: ColumnType<number, number | bigint, number | bigint>;
  sum: number;
  sum_sq: number;
  cov_sum: number | null;
  cov_sum_sq: number | null;
  cov_sum_product: number | null;
  den_sum: number | null;
  den_sum_sq: number | null;
  num_den_sum: number | null;
  ingested_at: Timestamp;
}

interface SignalPointRevisionsTable {
  id: Generated<string>;
  series_id: string;
  workspace_id: string;
  arm: string;
  ts: Timestamp;
  old_units: ColumnType<number, number | bigint, number | bigint>;
  old_sum: number;
  old_sum_sq: number;
  new_units: ColumnType<number, number | bigint, number | bigint>;
  new_sum: number;
  new_sum_sq: number;
  old_cov_sum: number | null;
  old_cov_sum_sq: number | null;
  old_cov_sum_product: number | null;
  new_cov_sum: number | null;
  new_cov_sum_sq: number | null;
  new_cov_sum_product: number | null;
  old_den_sum: number | null;
  old_den_sum_sq: number | null;
  old_num_den_sum: number | null;
  new_den_sum: number | null;
  new_den_sum_sq: number | null;
  new_num_den_sum: number | null;
  revised_at: ColumnType<Date, Date | string | undefined, never>;
}

interface AnalysesTable {
  id: Generated<string>;
  workspace_id: string;
  experiment_id: string;
  ts: Timestamp;
  arms: Json;
  effect: number | null;
  ci_low: number | null;
  ci_high: number | null;
  relative_lift: number | null;
  p_value: number | null;
  srm_p_value: number | null;
  guardrails: Json;
  decision: Json;
  details: Json;
  created_at: Timestamp;
}

interface LearningsTable {
  id: Generated<string>;
  workspace_id: string;
  outcome_id: string;
  experiment_id: string | null;
  statement: string;
  decision: string;
  effect: number | null;
  ci_low: number | null;
  ci_high: number | null;
  tags: ColumnType<string[], string[] | undefined, string[]>;
  links: Json;
  search: ColumnType<string, never, never>;
  created_at: Timestamp;
  source: ColumnType<string, string | undefined, string>;
  gate_id: string | null;
}

interface GateNotificationsTable {
  id: Generated<string>;
  workspace_id: string;
  gate_id: string;
  recipient: string;
  reason: string;
  status: ColumnType<string, string | undefined, string>;
  attempts: ColumnType<number, number | undefined, number>;
  last_error: string | null;
  message_id: string | null;
  claimed_at: NullableTimestamp;
  sent_at: NullableTimestamp;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

interface GateTokensTable {
  id: Generated<string>;
  workspace_id: string;
  gate_id: string;
  notification_id: string | null;
  recipient: string;
  decision: string;
  token_hash: string;
  expires_at: Timestamp;
  created_at: ColumnType<Date, Date | string | undefined, Date | string>;
  used_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
  revoked_reason: string | null;
}

export interface AuditEventsTable {
  id: ColumnType<string, never, never>;
  workspace_id: string;
  at: Timestamp;
  actor_id: string | null;
  actor_name: string | null;
  actor_role: string | null;
  channel: string;
  action: string;
  subject_type: string;
  subject_id: string;
  before: ColumnType<unknown, string | null, never>;
  after: ColumnType<unknown, string | null, never>;
  request_id: string | null;
}

interface IdempotencyKeysTable {
  workspace_id: string;
  key: string;
  request_hash: string;
  status_code: number;
  response: Json;
  created_at: Timestamp;
}

interface WebhookDeliveriesTable {
  id: Generated<string>;
  workspace_id: string;
  event_type: string;
  dedupe_key: string;
  payload: Json;
  status: ColumnType<string, string | undefined, string>;
  attempts: ColumnType<number, number | undefined, number>;
  last_error: string | null;
  created_at: Timestamp;
  delivered_at: NullableTimestamp;
}

interface LlmCacheTable {
  workspace_id: string;
  key: string;
  operation: string;
  prompt_version: string;
  model: string;
  value: ColumnType<unknown, string, string>;
  created_at: Timestamp;
}

interface LlmCallsTable {
  id: Generated<string>;
  workspace_id: string;
  outcome_id: string | null;
  actor_id: string;
  operation: string;
  prompt_version: string;
  provider: string;
  model: string;
  source: string;
  input_tokens: ColumnType<number, number | undefined, number>;
  output_tokens: ColumnType<number, number | undefined, number>;
  cost_usd: ColumnType<number, number | undefined, number>;
  latency_ms: number;
  cache_hit: ColumnType<boolean, boolean | undefined, boolean>;
  repaired: ColumnType<boolean, boolean | undefined, boolean>;
  fallback_reason: string | null;
  at: Timestamp;
}

/** A dashboard session (2026-12-09T01-00-sessions): the cookie's token is stored only as its SHA-256. */
interface SessionsTable {
  id: Generated<string>;
  /** Null only for a member's session before the member chose or created a workspace. */
  workspace_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** Exactly one of `api_key_id` and `member_id` is set (CHECK). */
  api_key_id: ColumnType<string | null, string | null | undefined, string | null>;
  member_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** Bumped when the member's role or membership changes, so the change trigger announces the session. */
  auth_version: Generated<number>;
  token_hash: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  last_seen_at: Timestamp;
  revoked_at: NullableTimestamp;
}

/** An import into a workspace (2026-12-09T02-00-imports): open while `finished_at` is null, one at a time. */
interface ImportsTable {
  id: Generated<string>;
  workspace_id: string;
  started_by: string;
  started_at: Timestamp;
  manifest: Json<Record<string, unknown>>;
  finished_at: NullableTimestamp;
}

/** A person's "poll now" waiting for the worker's sweep to queue it (2026-12-10T00-00-job-requests). */
interface PollRequestsTable {
  workspace_id: string;
  experiment_id: string;
  /** The request's time, to the second: one request per experiment and second. */
  requested_at: Timestamp;
}

/** A learning's LLM summary waiting to be done (2026-12-10T00-00-job-requests). */
interface LearningSummaryRequestsTable {
  learning_id: string;
  workspace_id: string;
  requested_at: Timestamp;
}

type NullableJson<T> = ColumnType<T | null, string | null | undefined, string | null>;

export interface FlagRolloutsTable {
  experiment_id: string;
  workspace_id: string;
  outcome_id: string;
  provider: string;
  flag_key: string;
  /** The experiment's arms: `[{ name, weight }]`, control first. */
  arms: ColumnType<readonly { name: string; weight: number }[], string, string>;
  /** `{ weights: { <arm>: fraction } }`: what the provider should serve. */
  desired: Json<{ weights: Record<string, number> }>;
  reason: string;
  version: number;
  requested_at: Timestamp;
  status: string;
  applied_version: number | null;
  applied_at: NullableTimestamp;
  applied_answer: NullableJson<Record<string, unknown>>;
  attempts: ColumnType<number, number | undefined, number>;
  last_attempt_at: NullableTimestamp;
  last_error_code: string | null;
  last_error: string | null;
  next_attempt_at: Timestamp;
  lease_until: NullableTimestamp;
  lease_owner: string | null;
  observed: NullableJson<Record<string, unknown>>;
  observed_at: NullableTimestamp;
  drift: NullableJson<Record<string, unknown>>;
  drift_at: NullableTimestamp;
}

interface FlagWeightHistoryTable {
  experiment_id: string;
  workspace_id: string;
  since: Timestamp;
  weights: Json<Record<string, number>>;
  source: string;
}

export interface Database {
  settings: SettingsTable;
  workspaces: WorkspacesTable;
  api_keys: ApiKeysTable;
  members: MembersTable;
  workspace_members: WorkspaceMembersTable;
  invitations: InvitationsTable;
  workspace_secrets: WorkspaceSecretsTable;
  outcomes: OutcomesTable;
  outcome_revisions: OutcomeRevisionsTable;
  experiments: ExperimentsTable;
  gates: GatesTable;
  signal_series: SignalSeriesTable;
  signal_points: SignalPointsTable;
  signal_point_revisions: SignalPointRevisionsTable;
  analyses: AnalysesTable;
  learnings: LearningsTable;
  audit_events: AuditEventsTable;
  idempotency_keys: IdempotencyKeysTable;
  webhook_deliveries: WebhookDeliveriesTable;
  llm_cache: LlmCacheTable;
  llm_calls: LlmCallsTable;
  gate_notifications: GateNotificationsTable;
  gate_tokens: GateTokensTable;
  sessions: SessionsTable;
  imports: ImportsTable;
  poll_requests: PollRequestsTable;
  learning_summary_requests: LearningSummaryRequestsTable;
  flag_rollouts: FlagRolloutsTable;
  flag_weight_history: FlagWeightHistoryTable;
}
