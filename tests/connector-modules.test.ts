/**
 * Connectors of one's own, end to end: the worker process started with
 * `CONNECTOR_MODULES` naming the example package
 * (`examples/connectors/http-json`) polls an experiment whose signal is read
 * through that type from a real HTTP endpoint on loopback, stores its points
 * and analyses them, against real Postgres and Redis; its /healthz names the
 * module. A module that cannot be used stops the worker's boot (exit 78,
 * EX_CONFIG) with a message naming the module, the field and the fix.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { signals } from "@outcome-runtime/db";
import { applyOutcome, loadConnectorModules, transitionOutcome } from "@outcome-runtime/runtime";
import { waitFor } from "@outcome-runtime/testing";
import { afterEach, describe, expect, it } from "vitest";
import { startWorkerProcess, stopProcess } from "./support/processes";
import { type Cleanups, createWorld, launchExperiments, runCleanups, testSourceAccess } from "./support/world";

const cleanups: Cleanups = [];
afterEach(() => runCleanups(cleanups));

const MODULE = "@outcome-runtime-examples/connector-http-json";
const TOKEN_ENV = "OUTCOME_RUNTIME_SOURCE_METRICS_TOKEN";
const TOKEN = "metrics-endpoint-token-42";

/** The team's metrics endpoint: each arm's cumulative aggregate as of `to` (README.md of the example). */
async function metricsEndpoint(): Promise<{ url: string; asked: URLSearchParams[] }> {
  const asked: URLSearchParams[] = [];
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    if (request.headers.authorization !== `Bearer ${TOKEN}`) {
      response.writeHead(401).end();
      return;
    }
    asked.push(url.searchParams);
    const rows = (url.searchParams.get("arms") ?? "").split(",").map((arm) => {
      const units = 4000;
      const conversions = arm === "control" ? 800 : 860;
      return { arm, units, sum: conversions, sum_sq: conversions };
    });
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ rows }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/arms?team=growth`, asked };
}

function outcomeYaml(slug: string, endpoint: string): string {
  return `version: 1
id: ${slug}
name: Checkout conversion from the metrics service
owner: owner@acme.example
signal:
  metric: checkout_conversion
  kind: proportion
  unit: user
  poll_interval: 1s
  connector:
    type: http-json
    url: ${JSON.stringify(endpoint)}
    token_env: ${TOKEN_ENV}
    timeout: 10s
target:
  direction: increase
  value: 10%
  relative: true
horizon: 60d
experiment_defaults:
  min_sample_per_arm: 100
  min_duration: 1s
  max_duration: 30d
  expected_effect: 10%
  arms:
    - name: control
      weight: 0.5
    - name: treatment
      weight: 0.5
`;
}

describe("connectors of one's own", () => {
  it("the worker polls an experiment through a type CONNECTOR_MODULES adds, and stores its analysis", async () => {
    // The API (here: the test process) knows the type as the worker does, through the same variable.
    await loadConnectorModules([MODULE]);
    const world = await createWorld(cleanups);
    const endpoint = await metricsEndpoint();
    const deps = { db: world.t.db, sources: testSourceAccess(world.sourceUrl, { [TOKEN_ENV]: TOKEN }) };
    const applied = await applyOutcome(deps, world.seed.admin, {
      source: outcomeYaml("own-connector", endpoint.url),
    });
    expect(applied.warnings ?? []).toEqual([]);
    await transitionOutcome(deps, world.seed.admin, "own-connector", "activate", null);
    const [experiment] = await launchExperiments(world, "own-connector", ["shorter-checkout"]);

    const worker = await startWorkerProcess(world, cleanups, {
      CONNECTOR_MODULES: MODULE,
      [TOKEN_ENV]: TOKEN,
      OUTBOUND_ALLOW: "127.0.0.0/8",
    });
    await worker.ready;
    const health = (await (await fetch(`http://127.0.0.1:${worker.port}/healthz`)).json()) as {
      connectors: { types: string[]; modules: unknown[] };
    };
    expect(health.connectors.modules).toEqual([
      { module: MODULE, type: "http-json", description: expect.stringContaining("HTTP endpoint") },
    ]);
    expect(health.connectors.types).toEqual(expect.arrayContaining(["postgres", "csv", "http-json"]));

    const analysis = await waitFor(
      "an analysis of the points read through http-json",
      async () => (await signals.listAnalyses(world.t.db, experiment!.id)).at(-1),
      { timeoutMs: 60_000, diagnostics: worker.output },
    );
    expect(await stopProcess(worker.proc)).toMatchObject({ code: 0 });

    expect(analysis.arms.control).toMatchObject({ units: 4000 });
    expect(analysis.arms.control?.mean).toBeCloseTo(0.2, 9);
    expect(analysis.arms.treatment?.mean).toBeCloseTo(0.215, 9);
    const series = (await signals.listSeriesOfExperiment(world.t.db, experiment!.id)).find((s) => s.role === "primary");
    const stored = await signals.latestPointsAtOrBefore(world.t.db, series!.id, analysis.ts);
    expect(stored.map((p) => [p.arm, p.units, p.sum])).toEqual([
      ["control", 4000, 800],
      ["treatment", 4000, 860],
    ]);
    // The worker asked the endpoint for this experiment's arms, with the token the operator's variable holds.
    expect(endpoint.asked.length).toBeGreaterThan(0);
    expect(endpoint.asked[0]?.get("experiment")).toBe("shorter-checkout");
    expect(endpoint.asked[0]?.get("arms")).toBe("control,treatment");
    expect(endpoint.asked[0]?.get("team")).toBe("growth");
  }, 120_000);

  it("a module that is not installed, or whose type shadows a built-in one, stops the worker's boot", async () => {
    const world = await createWorld(cleanups);
    const dir = mkdtempSync(join(tmpdir(), "ort-modules-"));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const shadowing = join(dir, "postgres-too.mjs");
    writeFileSync(shadowing, 'export default { type: "postgres", create() { return {}; } };\n');

    const cases: [string, string][] = [
      [
        "@acme/outcome-connector-nowhere",
        'CONNECTOR_MODULES: module "@acme/outcome-connector-nowhere": import: is not installed where the runtime runs; install it beside the runtime',
      ],
      [
        shadowing,
        `CONNECTOR_MODULES: module "${shadowing}": type: "postgres" is a built-in connector type, which a module may not replace; give the module's connector a type of its own`,
      ],
    ];
    for (const [module, message] of cases) {
      const worker = await startWorkerProcess(world, cleanups, { CONNECTOR_MODULES: module });
      worker.ready.catch(() => {});
      const exit = await worker.proc.exited;
      expect(exit.code).toBe(78);
      expect(worker.output()).toContain(message);
    }
  }, 180_000);
});
