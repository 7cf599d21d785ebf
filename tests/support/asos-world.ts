/**
 * A runtime world on the demo's data for UI tests: the ASOS app database on a
 * simulated clock (a few comparisons), a fresh runtime database with the
 * demo's outcome, experiments proposed, approved, built and launched by a PM
 * and an agent, and a clock that polls and analyses as the worker would.
 */
import {
  analyseExperiment,
  applyOutcome,
  type Caller,
  connectorProvider,
  decideGate,
  getExperiment,
  pollExperiment,
  proposeExperiment,
  sourceAccessFromEnv,
  transitionExperiment,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import {
  createEmptyDatabase,
  createTestDatabase,
  type Seeded,
  seedWorkspace,
  serverUrl,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { type AsosComparison, closeAppPools, createAppDatabase, loadAsos, setClock } from "../../scripts/demo/asos";
import { demoOutcomeYaml } from "../../scripts/demo/outcome";

const PM = "pm@asos-demo.example";
export const OUTCOME = "asos-metric-1";

export interface AsosWorld {
  readonly t: TestDatabase;
  readonly seed: Seeded;
  readonly pm: { key: string; caller: Caller };
  readonly appUrl: string;
  readonly comparisons: readonly AsosComparison[];
  /** Experiment id by comparison key. */
  readonly ids: ReadonlyMap<string, string>;
  /** Move the app's clock to `day` and poll and analyse every running experiment, as the worker does. */
  advanceTo(day: number): Promise<void>;
  /** The simulated day the clock is at. */
  day(): number;
  close(): Promise<void>;
}

/**
 * Build the world for the comparisons `keys` (e.g. `asos-ee6ff7-v1`), with the
 * clock before the first checkpoint.
 */
export async function createAsosWorld(keys: readonly string[]): Promise<AsosWorld> {
  const load = await loadAsos();
  const comparisons = load.comparisons.filter((c) => keys.includes(c.key));
  if (comparisons.length !== keys.length) throw new Error(`ASOS comparisons not found: ${keys.join(", ")}`);
  const admin = new URL(serverUrl());
  admin.pathname = "/postgres";
  // A database name of the test suite's own (dropped with the others), filled by the demo's loader.
  const app = await createEmptyDatabase();
  const created = await createAppDatabase(admin.toString(), app.name, comparisons);
  const appUrl = created.url;
  await setClock(appUrl, -1);
  const t = await createTestDatabase({ max: 20 });
  const seed = await seedWorkspace(t.db);
  const sources = sourceAccessFromEnv({ OUTCOME_RUNTIME_SOURCE_ASOS_APP_DATABASE_URL: created.readerUrl });
  const deps = { db: t.db, sources };
  const pm = await seed.key(PM, "approver");
  const agent = await seed.key("demo-agent", "agent");
  await applyOutcome(deps, seed.admin, { source: demoOutcomeYaml({ id: OUTCOME, pm: PM, alpha: 0.05 }) });
  await transitionOutcome(deps, seed.admin, OUTCOME, "activate", null);
  const ids = new Map<string, string>();
  let portfolio = "";
  for (const c of comparisons) {
    const proposed = await proposeExperiment(deps, pm.caller, OUTCOME, {
      key: c.key,
      title: `ASOS experiment ${c.experimentId}, variant ${c.variantId}`,
      statement: `Variant ${c.variantId} of ASOS experiment ${c.experimentId} changes metric 1 (a real experiment, replayed).`,
      arms: [
        { name: "control", weight: c.weights.control },
        { name: "treatment", weight: c.weights.treatment },
      ],
      touchedPaths: [`apps/web/src/experiments/${c.experimentId}/**`],
    });
    ids.set(c.key, proposed.experiment.id);
    portfolio = proposed.gate.id;
  }
  await decideGate(deps, pm.caller, portfolio, { decision: "approve", reason: "replay them all" });
  for (const c of comparisons) {
    const id = ids.get(c.key)!;
    await transitionExperiment(deps, agent.caller, id, { action: "claim" });
    const built = await transitionExperiment(deps, agent.caller, id, {
      action: "report_built",
      changedPaths: [`apps/web/src/experiments/${c.experimentId}/variant.tsx`],
      build: { summary: `Variant ${c.variantId} behind the flag ${c.key}`, flagKey: c.key },
    });
    await decideGate(deps, pm.caller, built.openedGates[0]!.id, { decision: "approve" });
  }
  const connectors = connectorProvider({ db: t.db, access: sources });
  let day = -1;
  return {
    t,
    seed,
    pm,
    appUrl,
    comparisons,
    ids,
    day: () => day,
    async advanceTo(target: number) {
      for (let d = Math.max(0, day + 0.5); d <= target; d += 0.5) {
        await setClock(appUrl, d);
        day = d;
        for (const id of ids.values()) {
          const { experiment } = await getExperiment(deps, seed.admin, id);
          if (experiment.state !== "running") continue;
          await pollExperiment({ ...deps, connectors }, id);
          await analyseExperiment(deps, id);
        }
      }
    },
    async close() {
      await connectors.close();
      await closeAppPools();
      await t.drop();
      await app.drop();
    },
  };
}
