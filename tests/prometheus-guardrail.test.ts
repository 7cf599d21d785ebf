/**
 * End to end, through the worker process: an experiment's signal read from
 * the team's analytics database (the `postgres` connector) and its error-rate
 * guardrail read from a real Prometheus (Debian's package, started by
 * @outcome-runtime/testing/prometheus) scraping the checkout service's
 * counters (a prom-client registry labelled by experiment and arm). When the
 * treatment's errors rise in the scraped counters, the first poll that can
 * see them pauses the experiment: audited, with one signed webhook, and the
 * signal's source kept reading all along.
 */
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { audit, signals } from "@outcome-runtime/db";
import {
  applyOutcome,
  EVENT_HEADER,
  getExperiment,
  SIGNATURE_HEADER,
  transitionOutcome,
  verifyWebhookSignature,
} from "@outcome-runtime/runtime";
import { sleep, waitFor } from "@outcome-runtime/testing";
import { type RunningPrometheus, startPrometheus } from "@outcome-runtime/testing/prometheus";
import { Counter, Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { startWorkerProcess, stopProcess } from "./support/processes";
import {
  type Cleanups,
  createWorld,
  insertSource,
  launchExperiments,
  runCleanups,
  SOURCE_ENV,
  stateOf,
} from "./support/world";

const cleanups: Cleanups = [];
afterEach(() => runCleanups(cleanups.splice(0)));

const WEBHOOK_SECRET = "prometheus-guardrail-webhook-secret-0123";
const KEY = "one-page-checkout";

/** The signal: each arm's cumulative exposures and conversions, as of each poll's window end (no `ts` column). */
const SIGNAL_QUERY =
  "SELECT arm, units::float8 AS units, sum, sum_sq FROM source_points WHERE experiment_key = :experiment AND ts <= :to";

function outcomeYaml(prometheusUrl: string): string {
  return `version: 1
id: checkout-health
name: One-page checkout, guarded by the checkout API's error rate
owner: owner@acme.example
signal:
  metric: checkout_conversion
  kind: proportion
  unit: user
  poll_interval: 1s
  connector:
    type: postgres
    database_url_env: ${SOURCE_ENV}
    query: ${JSON.stringify(SIGNAL_QUERY)}
target:
  direction: increase
  value: 10%
  relative: true
horizon: 60d
constraints:
  kill:
    max_harm: 50%
    relative: true
  guardrails:
    - metric: checkout_error_rate
      kind: proportion
      description: Share of checkout API requests answered with an error.
      direction: decrease
      max_regression: 0.5%
      relative: false
      connector:
        type: prometheus
        url: ${prometheusUrl}
        requests: checkout_requests_total
        errors: checkout_errors_total
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

/** A webhook receiver that records what it gets, byte for byte. */
async function webhookReceiver(): Promise<{ url: string; received: { headers: IncomingHttpHeaders; body: string }[] }> {
  const received: { headers: IncomingHttpHeaders; body: string }[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString("utf8") });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks/outcome-runtime`, received };
}

describe("an error-rate guardrail read from a real Prometheus", () => {
  it("pauses the experiment at the first poll that sees the treatment's errors rise, audited, with one webhook", async () => {
    const registry = new Registry();
    const requests = new Counter({
      name: "checkout_requests_total",
      help: "Checkout API requests by experiment and arm.",
      labelNames: ["experiment", "arm"],
      registers: [registry],
    });
    const errors = new Counter({
      name: "checkout_errors_total",
      help: "Checkout API requests answered with an error, by experiment and arm.",
      labelNames: ["experiment", "arm"],
      registers: [registry],
    });
    const prometheus: RunningPrometheus = await startPrometheus({ targets: [registry] });
    cleanups.push(() => prometheus.close());
    const world = await createWorld(cleanups);
    await applyOutcome(world.deps, world.seed.admin, { source: outcomeYaml(prometheus.url) });
    await transitionOutcome(world.deps, world.seed.admin, "checkout-health", "activate", null);
    const [experiment] = await launchExperiments(world, "checkout-health", [KEY]);
    const id = experiment!.id;
    // The signal: 5,000 users per arm, converting alike (no harm, no win).
    const past = new Date(Date.now() - 3_600_000);
    await insertSource(world, [
      { key: KEY, arm: "control", ts: past, units: 5000, conversions: 1000 },
      { key: KEY, arm: "treatment", ts: past, units: 5000, conversions: 1000 },
    ]);

    // The service starts counting at launch (series from 0), then serves 10,000 requests per arm, 1 % failing.
    const total = (metric: string) => `sum by (arm) (${metric}{experiment="${KEY}"})`;
    const reaches =
      (arm: string, value: number) => (samples: readonly { metric: Record<string, string>; value: string }[]) =>
        samples.some((s) => s.metric.arm === arm && Number(s.value) >= value);
    for (const arm of ["control", "treatment"]) {
      requests.inc({ experiment: KEY, arm }, 0);
      errors.inc({ experiment: KEY, arm }, 0);
    }
    await prometheus.waitForSamples(`count(${total("checkout_errors_total")})`, (s) => Number(s[0]?.value) === 2);
    for (const arm of ["control", "treatment"]) {
      requests.inc({ experiment: KEY, arm }, 10_000);
      errors.inc({ experiment: KEY, arm }, 100);
    }
    await prometheus.waitForSamples(
      total("checkout_requests_total"),
      (s) => reaches("control", 10_000)(s) && reaches("treatment", 10_000)(s),
    );

    const hooks = await webhookReceiver();
    const worker = await startWorkerProcess(world, cleanups, {
      OUTCOME_RUNTIME_WEBHOOK_URL: hooks.url,
      OUTCOME_RUNTIME_WEBHOOK_SECRET: WEBHOOK_SECRET,
      // The local Prometheus listens on loopback, which production refuses unless the operator allows it.
      OUTBOUND_ALLOW: "127.0.0.1",
    });
    await worker.ready;
    // Healthy first: analyses read the guardrail from Prometheus and let the experiment run.
    await waitFor(
      "two analyses with the guardrail read from Prometheus",
      async () => {
        const analyses = await signals.listAnalyses(world.t.db, id);
        const read = analyses.filter((a) => (a.guardrails as unknown[]).length > 0);
        return read.length >= 2 ? read : undefined;
      },
      { timeoutMs: 60_000, diagnostics: worker.output },
    );
    expect(await stateOf(world, id)).toBe("running");
    const healthy = await getExperiment(world.deps, world.seed.admin, id);
    expect(healthy.sources).toMatchObject([
      { role: "primary", connector: "postgres", status: "ok" },
      { role: "guardrail", metric: "checkout_error_rate", connector: "prometheus", status: "ok" },
    ]);

    // The treatment breaks: its next 10,000 requests fail 30 % of the time; the control's stay at 1 %.
    requests.inc({ experiment: KEY, arm: "control" }, 10_000);
    errors.inc({ experiment: KEY, arm: "control" }, 100);
    requests.inc({ experiment: KEY, arm: "treatment" }, 10_000);
    errors.inc({ experiment: KEY, arm: "treatment" }, 3000);
    await prometheus.waitForSamples(total("checkout_errors_total"), reaches("treatment", 3100));
    // From here on, every poll's read of Prometheus (evaluated at its window end, after this) sees the rise.
    const visibleAt = new Date();

    await waitFor(
      "the experiment to be paused",
      async () => ((await stateOf(world, id)) === "paused" ? true : undefined),
      {
        timeoutMs: 60_000,
        diagnostics: worker.output,
      },
    );
    await waitFor(
      "the pause's webhook",
      async () => hooks.received.some((r) => r.body.includes('"experiment.paused"')),
      {
        diagnostics: worker.output,
      },
    );
    // Give a second decision or a duplicate delivery the chance to show up before counting.
    await sleep(2000);

    // Within one poll interval: the first analysis of a snapshot after the rise became visible is the pause.
    const analyses = await signals.listAnalyses(world.t.db, id);
    const after = analyses.filter((a) => a.ts > visibleAt);
    expect(after.length).toBeGreaterThan(0);
    expect(after[0]!.decision).toMatchObject({ action: "pause", reason: "guardrail" });
    expect(analyses.at(-1)!.id).toBe(after[0]!.id);
    expect(after[0]!.guardrails).toContainEqual(
      expect.objectContaining({ metric: "checkout_error_rate", arm: "treatment", verdict: "violated" }),
    );

    const paused = await audit.listAuditEvents(world.t.db, world.seed.workspaceId, {
      subjectId: id,
      action: "experiment.paused",
    });
    expect(paused).toHaveLength(1);
    expect(paused[0]).toMatchObject({
      actor: { id: "worker", role: "system" },
      after: { state: "paused", action: "pause", reason: "guardrail" },
    });

    const pauseHooks = hooks.received.filter(
      (r) => (JSON.parse(r.body) as { type: string }).type === "experiment.paused",
    );
    expect(new Set(pauseHooks.map((r) => String(r.headers[EVENT_HEADER]))).size).toBe(1);
    for (const delivery of pauseHooks) {
      expect(verifyWebhookSignature(WEBHOOK_SECRET, delivery.body, String(delivery.headers[SIGNATURE_HEADER]))).toBe(
        true,
      );
      expect(JSON.parse(delivery.body)).toMatchObject({
        type: "experiment.paused",
        data: { action: "pause", reason: "guardrail", experiment: { id, key: KEY, state: "paused" } },
      });
    }
    expect((await stopProcess(worker.proc)).code).toBe(0);
  }, 180_000);
});
