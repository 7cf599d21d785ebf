/**
 * The demo's data for the API and MCP benchmarks: the ASOS app database on a
 * simulated clock (`scripts/demo/asos.ts`), and a runtime database with the
 * demo's outcome and the first `comparisons` ASOS comparisons with metric 1
 * proposed, approved, built and launched by a PM and an agent through the use
 * cases, then polled and analysed every half simulated day up to the last
 * checkpoint, as the worker does in `pnpm demo`. Answers are the demo's in
 * shape and size; the demo runs every comparison with metric 1 (99), the
 * benchmark a subset by default, so that building the world stays short.
 */
import type { Db } from "@outcome-runtime/db";
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
import { seedWorkspace } from "@outcome-runtime/testing";
import { closeAppPools, createAppDatabase, loadAsos, setClock } from "../scripts/demo/asos";
import { demoOutcomeYaml } from "../scripts/demo/outcome";
import type { BenchDatabases } from "./bench-database";

const PM = "pm@asos-demo.example";
const OUTCOME = "asos-metric-1";

export interface DemoWorld {
  readonly db: Db;
  /** The runtime database's URL, for the API process. */
  readonly url: string;
  /** The bootstrap admin key the world was seeded with (the API must start with it, or it rotates it). */
  readonly adminKey: string;
  readonly admin: Caller;
  /** The PM's key (role approver): the gates' assignee. */
  readonly pmKey: string;
  readonly pm: Caller;
  /** An agent's key (role agent). */
  readonly agentKey: string;
  readonly agent: Caller;
  readonly outcomeId: string;
  /** Experiment ids, in the order of the comparisons. */
  readonly experimentIds: readonly string[];
  /** The launch gate of the first experiment (approved). */
  readonly launchGateId: string;
  /** How many comparisons the world holds, and how many the demo would. */
  readonly comparisons: { readonly used: number; readonly available: number };
  readonly analyses: number;
  readonly seconds: number;
  /** Close the connectors and the app database's pools (the databases are dropped with the run's). */
  close(): Promise<void>;
}

/**
 * Build the world in a clone of the run's template (`scenario`) and an ASOS
 * app database beside it. `comparisons` caps how many comparisons with
 * metric 1 are replayed (null: all of them, as the demo does).
 */
export async function buildDemoWorld(
  dbs: BenchDatabases,
  scenario: string,
  options: { comparisons: number | null; progress?: (text: string) => void },
): Promise<DemoWorld> {
  const started = performance.now();
  const load = await loadAsos();
  const withMetric1 = load.comparisons.filter((c) => (c.metrics[1]?.length ?? 0) > 0);
  const comparisons = options.comparisons === null ? withMetric1 : withMetric1.slice(0, options.comparisons);
  const appName = dbs.track(`${dbs.template}_${scenario}_app`);
  const app = await createAppDatabase(dbs.adminUrl(), appName, comparisons);
  await setClock(app.url, -1);
  const runtime = await dbs.clone(scenario, 10);
  const db = runtime.db;
  const seed = await seedWorkspace(db);
  const sources = sourceAccessFromEnv({ OUTCOME_RUNTIME_SOURCE_ASOS_APP_DATABASE_URL: app.readerUrl });
  const deps = { db, sources };
  const pm = await seed.key(PM, "approver");
  const agent = await seed.key("demo-agent", "agent");
  const applied = await applyOutcome(deps, seed.admin, {
    source: demoOutcomeYaml({ id: OUTCOME, pm: PM, alpha: 0.05 }),
  });
  await transitionOutcome(deps, seed.admin, OUTCOME, "activate", null);
  const ids: string[] = [];
  const launchGates: string[] = [];
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
    ids.push(proposed.experiment.id);
    portfolio = proposed.gate.id;
  }
  await decideGate(deps, pm.caller, portfolio, { decision: "approve", reason: "replay them all" });
  for (const [i, c] of comparisons.entries()) {
    const id = ids[i] as string;
    await transitionExperiment(deps, agent.caller, id, { action: "claim" });
    const built = await transitionExperiment(deps, agent.caller, id, {
      action: "report_built",
      changedPaths: [`apps/web/src/experiments/${c.experimentId}/variant.tsx`],
      build: { summary: `Variant ${c.variantId} behind the flag ${c.key}`, flagKey: c.key },
    });
    const launch = built.openedGates[0];
    if (launch === undefined) throw new Error(`no launch gate opened for ${c.key}`);
    launchGates.push(launch.id);
    await decideGate(deps, pm.caller, launch.id, { decision: "approve" });
  }
  const connectors = connectorProvider({ db, access: sources });
  const lastDay = Math.max(...comparisons.map((c) => c.metrics[1]?.at(-1)?.day ?? 0));
  let analyses = 0;
  for (let day = 0; day <= lastDay; day += 0.5) {
    await setClock(app.url, day);
    for (const id of ids) {
      const { experiment } = await getExperiment(deps, seed.admin, id);
      if (experiment.state !== "running") continue;
      await pollExperiment({ ...deps, connectors }, id);
      await analyseExperiment(deps, id);
      analyses++;
    }
    if (day % 10 === 0) options.progress?.(`   simulated day ${day} of ${lastDay}`);
  }
  return {
    db,
    url: runtime.url,
    adminKey: seed.adminKey,
    admin: seed.admin,
    pmKey: pm.key,
    pm: pm.caller,
    agentKey: agent.key,
    agent: agent.caller,
    outcomeId: applied.outcome.id,
    experimentIds: ids,
    launchGateId: launchGates[0] ?? "",
    comparisons: { used: comparisons.length, available: withMetric1.length },
    analyses,
    seconds: (performance.now() - started) / 1000,
    async close() {
      await connectors.close();
      await closeAppPools();
    },
  };
}
