/**
 * The API's dry run of an outcome's reads (`POST /v1/outcomes/signals-test`,
 * `outcome-runtime signals test --api`): each metric's connector runs its read
 * once against the real source, with the credentials resolved for the
 * caller's workspace as the worker resolves them (its own secrets only; the
 * operator's variables as `SOURCE_ENV_WORKSPACES` allows), and the rows it
 * would store are returned. Nothing is stored.
 */
import { DEFAULT_DRY_RUN_WINDOW_MS, dryRunOutcome, type SignalsTestReport } from "@outcome-runtime/connectors";
import { authorize, DomainError } from "@outcome-runtime/core";
import { databaseIdentity } from "@outcome-runtime/db";
import { connectorPointers, humanPath } from "@outcome-runtime/spec";
import { OutcomeInvalidError } from "../apply-outcome";
import { type OutcomeCheckDeps, parseOutcomeChecked } from "../check-outcome";
import type { Caller } from "../context";
import { resolveCredentials, type SourceAccess, sourceWorkspace } from "./source-access";

/** The most experiment keys one dry run reads. */
export const MAX_DRY_RUN_EXPERIMENTS = 20;

/** The longest one source call of a dry run may take, ms. */
const DRY_RUN_TIMEOUT_MS = 30_000;

/** What to read. */
export interface SignalsTestInput {
  /** The outcome.yaml text. */
  readonly source: string;
  /** The file name for positions (default `outcome.yaml`). */
  readonly file?: string;
  /** Experiment keys (at most {@link MAX_DRY_RUN_EXPERIMENTS}); none: {@link PLACEHOLDER_EXPERIMENT}. */
  readonly experiments?: readonly string[];
  /** Window end (default now) and start (default 7 days before the end). */
  readonly from?: Date;
  readonly to?: Date;
}

const NO_ACCESS: SourceAccess = { env: {}, envWorkspaces: null, secretsKeyring: null, allowedApiUrls: {} };

/**
 * Runs the dry run for the caller's workspace (the `outcome.validate` permission).
 *
 * @throws DomainError `forbidden` without the permission; `validation_failed` for a window that ends before it
 *   starts or too many experiments; OutcomeInvalidError (`outcome_invalid`) when the file has errors
 */
export async function testOutcomeSignals(
  deps: OutcomeCheckDeps,
  caller: Caller,
  input: SignalsTestInput,
): Promise<SignalsTestReport> {
  authorize(caller, "outcome.validate");
  const file = input.file ?? "outcome.yaml";
  const to = input.to ?? new Date();
  const from = input.from ?? new Date(to.getTime() - DEFAULT_DRY_RUN_WINDOW_MS);
  if (from.getTime() >= to.getTime()) {
    throw new DomainError(
      "validation_failed",
      `from ${from.toISOString()} is not before to ${to.toISOString()}; give a window that ends after it starts`,
      { field: "from", value: from.toISOString() },
    );
  }
  const given = [...new Set(input.experiments ?? [])];
  if (given.length > MAX_DRY_RUN_EXPERIMENTS) {
    throw new DomainError(
      "validation_failed",
      `experiments: ${given.length} keys; a dry run reads at most ${MAX_DRY_RUN_EXPERIMENTS}`,
      { field: "experiments", value: given.length },
    );
  }
  const parsed = parseOutcomeChecked(input.source, file, deps.sources);
  if (!parsed.ok) throw new OutcomeInvalidError(parsed.errors);
  const arms = (parsed.spec.experiment_defaults?.arms ?? []).map((arm) => arm.name);
  const access = deps.sources ?? NO_ACCESS;
  // The caller's own workspace: its secrets, and the variables the operator lets it use.
  const workspace = await sourceWorkspace(deps.db, caller.principal.workspaceId);
  const metrics = connectorPointers(parsed.spec).map(({ pointer, kind, config }) => ({
    path: humanPath(pointer.replace(/\/connector$/u, "")),
    kind,
    config: config as { type: string } & Record<string, unknown>,
    locate: (setting: string | null, offset: number | undefined) =>
      parsed.locate(setting === null ? pointer : `${pointer}/${setting}`, offset),
  }));
  return dryRunOutcome(file, metrics, given, {
    arms,
    from,
    to,
    context: {
      runtimeDatabase: () => databaseIdentity(deps.db),
      allowedApiUrls: access.allowedApiUrls,
      maxTimeoutMs: DRY_RUN_TIMEOUT_MS,
      ...(access.csvDir === undefined ? {} : { baseDir: access.csvDir }),
    },
    credentials: (requirements) => resolveCredentials(deps.db, access, workspace, requirements, "API"),
    signal: AbortSignal.timeout(2 * DRY_RUN_TIMEOUT_MS),
  });
}
