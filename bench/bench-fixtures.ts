/**
 * What the database scenarios share: a workspace with an active outcome (the
 * repository's example outcome, applied through the real use case so its spec
 * is a valid normalised spec), and running experiments inserted in bulk.
 */
import type { Db } from "@outcome-runtime/db";
import { applyOutcome, type measuredMetrics, transitionOutcome } from "@outcome-runtime/runtime";
import { exampleOutcome, seedWorkspace } from "@outcome-runtime/testing";

/** The normalised spec type, as the runtime's use cases take it. */
type NormalizedSpec = Parameters<typeof measuredMetrics>[0];

export interface BenchOutcome {
  readonly workspaceId: string;
  readonly outcomeId: string;
  readonly spec: NormalizedSpec;
}

/**
 * `outcome.example.yaml` with its queries in the batched form (`:experiments`,
 * an `experiment` column): one query reads many experiments.
 */
function batchedExampleOutcome(): string {
  let text = exampleOutcome();
  for (const [from, to] of [
    ["SELECT e.arm,", "SELECT e.experiment_key AS experiment, e.arm,"],
    ["e.experiment_key = :experiment", "e.experiment_key = ANY(:experiments)"],
    ["GROUP BY e.arm", "GROUP BY e.experiment_key, e.arm"],
  ] as const) {
    if (!text.includes(from)) throw new Error(`batchedExampleOutcome: "${from}" is not in the example outcome`);
    text = text.replaceAll(from, to);
  }
  return text;
}

/**
 * Bootstrap the workspace, apply `outcome.example.yaml` (or the batched form of it, and `extraYaml` appended: a
 * top-level block such as `flags:`) and activate it.
 */
export async function activeExampleOutcome(
  db: Db,
  options: { batched?: boolean; extraYaml?: string } = {},
): Promise<BenchOutcome> {
  const seed = await seedWorkspace(db);
  const deps = { db };
  const source = (options.batched ? batchedExampleOutcome() : exampleOutcome()) + (options.extraYaml ?? "");
  const applied = await applyOutcome(deps, seed.admin, { source, file: "outcome.example.yaml" });
  const active = await transitionOutcome(deps, seed.admin, applied.outcome.slug, "activate", null);
  return { workspaceId: seed.workspaceId, outcomeId: active.id, spec: active.spec as unknown as NormalizedSpec };
}

/**
 * Insert `count` experiments of the outcome directly in state `running`
 * (launched now, arms control/treatment 50/50), 1,000 rows per statement.
 * Going through propose → approve → build → launch for each would make the
 * setup of 10,000 experiments longer than the measurement. Returns their ids.
 */
export async function insertRunningExperiments(db: Db, outcome: BenchOutcome, count: number): Promise<string[]> {
  const launchedAt = new Date();
  const arms = JSON.stringify([
    { name: "control", weight: 0.5 },
    { name: "treatment", weight: 0.5 },
  ]);
  const ids: string[] = [];
  for (let start = 0; start < count; start += 1000) {
    const rows = Array.from({ length: Math.min(1000, count - start) }, (_, i) => {
      const n = String(start + i + 1).padStart(6, "0");
      return {
        workspace_id: outcome.workspaceId,
        outcome_id: outcome.outcomeId,
        key: `bench-${n}`,
        title: `Bench experiment ${n}`,
        statement: `If we ship change ${n}, fewer shoppers abandon the checkout, because the flow is shorter.`,
        touched_paths: ["apps/web/src/checkout/Summary.tsx"],
        arms,
        source: "human",
        state: "running",
        launched_at: launchedAt,
      };
    });
    const inserted = await db.insertInto("experiments").values(rows).returning("id").execute();
    ids.push(...inserted.map((r) => r.id));
  }
  return ids;
}
