/**
 * Source health against the real Postgres, with a synthetic connector per
 * source (the signal's analytics database and the guardrail's payment
 * database of the example outcome): one source's outage does not stop the
 * other, each read is recorded on its series and shown on the experiment and
 * the outcome, and a rate-limit answer holds a source back (no request) until
 * it allows a read, after which the watermark catches up with nothing lost.
 */
import { type ArmAggregate, ConnectorError, type SignalConnector } from "@outcome-runtime/connectors";
import { signals } from "@outcome-runtime/db";
import {
  createTestDatabase,
  outcomeVariant,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
} from "@outcome-runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyOutcome } from "../apply-outcome";
import { decideGate } from "../decide-gate";
import { getExperiment, proposeExperiment, transitionExperiment } from "../experiments";
import { getOutcome, transitionOutcome } from "../outcomes";
import { analyseExperiment } from "./analyse";
import { type ConnectorProvider, connectorProvider } from "./connectors";
import { pollExperiment, type SignalDeps } from "./poll";
import { sourceAccessFromEnv } from "./source-access";
import { sourcesStatus } from "./source-reads";

let t: TestDatabase;
let seed: Seeded;
const HOUR = 3_600_000;

/** What each source does on its next read: answer its rows, fail, or answer the vendor's rate limit. */
type Behaviour = "answer" | "down" | "rate_limited";
const sources = {
  primary: { behaviour: "answer" as Behaviour, reads: [] as { from: Date; to: Date }[] },
  guardrail: { behaviour: "answer" as Behaviour, reads: [] as { from: Date; to: Date }[] },
};

/** Hourly cumulative rows from `start` up to `to`: `units` a new hour per arm, conversions at `rate`. */
function hourly(start: Date, from: Date, to: Date, units: number, rate: number): ArmAggregate[] {
  const out: ArmAggregate[] = [];
  for (let h = 1; start.getTime() + h * HOUR <= to.getTime(); h++) {
    const ts = new Date(start.getTime() + h * HOUR);
    if (ts <= from) continue;
    for (const arm of ["control", "treatment"]) {
      const n = units * h;
      const conversions = Math.round(n * rate);
      out.push({ arm, units: n, sum: conversions, sum_sq: conversions, ts });
    }
  }
  return out;
}

const START = new Date("2026-11-30T00:00:00Z");

function fakeConnector(config: { type: string } & Record<string, unknown>): SignalConnector {
  const role = String(config.query ?? "").includes("payment_attempts") ? "guardrail" : "primary";
  const state = sources[role];
  return {
    type: "fake",
    describe: () => (role === "guardrail" ? "payments database (payment_attempts)" : "analytics database (checkout)"),
    fetchArmAggregates: async (window) => {
      state.reads.push({ from: window.from, to: window.to });
      if (state.behaviour === "down") {
        throw new ConnectorError("unavailable", "connect ECONNREFUSED 10.0.0.7:5432 (the payments database is down)");
      }
      if (state.behaviour === "rate_limited") {
        throw new ConnectorError("rate_limited", "429 Too Many Requests: quota of 60 queries an hour spent", {
          retryAfterMs: 2 * HOUR,
        });
      }
      return role === "guardrail"
        ? hourly(START, window.from, window.to, 2000, 0.01)
        : hourly(START, window.from, window.to, 3000, 0.68);
    },
    fetchOutcomeSeries: async () => [],
    close: async () => {},
  };
}

let connectors: ConnectorProvider;
const deps = (now: Date): SignalDeps => ({ db: t.db, connectors, now: () => now });

beforeAll(async () => {
  t = await createTestDatabase();
  seed = await seedWorkspace(t.db);
  connectors = connectorProvider({
    db: t.db,
    access: sourceAccessFromEnv({
      OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL: "postgres://analytics.invalid/app",
    }),
    create: (config) => fakeConnector(config),
  });
});
afterAll(async () => {
  await connectors.close();
  await t.drop();
});

/** An active outcome with one experiment taken to `running` through its gates; its id. */
async function runningExperiment(slug: string): Promise<string> {
  await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant(slug) });
  await transitionOutcome({ db: t.db }, seed.admin, slug, "activate", null);
  const proposed = await proposeExperiment({ db: t.db }, seed.admin, slug, {
    title: `Variant for ${slug}`,
    statement: "If the checkout is shorter, fewer shoppers abandon it, because there is less to do.",
    touchedPaths: ["apps/web/src/checkout/Summary.tsx"],
  });
  await decideGate({ db: t.db }, seed.admin, proposed.gate.id, { decision: "approve" });
  const key = proposed.experiment.key;
  await transitionExperiment({ db: t.db }, seed.admin, key, { action: "claim", claimedBy: "agent-1" });
  const built = await transitionExperiment({ db: t.db }, seed.admin, key, {
    action: "report_built",
    changedPaths: ["apps/web/src/checkout/Summary.tsx"],
  });
  const launch = built.openedGates.find((g) => g.kind === "launch_approval");
  await decideGate({ db: t.db }, seed.admin, launch!.id, { decision: "approve" });
  return proposed.experiment.id;
}

function reset(): void {
  for (const s of Object.values(sources)) {
    s.behaviour = "answer";
    s.reads.length = 0;
  }
}

describe("one source's outage", () => {
  it("stores and analyses the other source's points, records the failure on the experiment and on its source", async () => {
    reset();
    const id = await runningExperiment("health-outage");
    const at = new Date(START.getTime() + 3 * HOUR);
    sources.guardrail.behaviour = "down";
    const polled = await pollExperiment(deps(at), id);
    expect(polled).toMatchObject({
      status: "polled",
      inserted: 6,
      failures: [
        {
          metric: "payment_error_rate",
          role: "guardrail",
          code: "unavailable",
          message: "connect ECONNREFUSED 10.0.0.7:5432 (the payments database is down)",
          throttled: false,
        },
      ],
    });
    // The signal's three hourly snapshots are analysed although the guardrail's source is down.
    expect((await analyseExperiment(deps(at), id)).analysed).toBe(3);

    const detail = await getExperiment(deps(at), seed.admin, id);
    expect(detail.experiment.polling).toMatchObject({
      failures: 1,
      error: {
        code: "unavailable",
        message:
          "guardrail payment_error_rate (postgres): connect ECONNREFUSED 10.0.0.7:5432 (the payments database is down)",
      },
    });
    expect(detail.sources).toMatchObject([
      {
        metric: "checkout_abandonment_rate",
        role: "primary",
        connector: "postgres",
        source: "analytics database (checkout)",
        status: "ok",
        lastReadAt: at,
        polledUntil: at,
        lastError: null,
        throttledUntil: null,
      },
      {
        metric: "payment_error_rate",
        role: "guardrail",
        connector: "postgres",
        source: "payments database (payment_attempts)",
        status: "failing",
        lastReadAt: null,
        polledUntil: null,
        lastError: {
          code: "unavailable",
          message: "connect ECONNREFUSED 10.0.0.7:5432 (the payments database is down)",
          at,
        },
      },
    ]);

    // The source comes back: the guardrail catches up from the beginning, the poll counts as successful again.
    sources.guardrail.behaviour = "answer";
    const later = new Date(at.getTime() + HOUR);
    const again = await pollExperiment(deps(later), id);
    expect(again).toMatchObject({ status: "polled", failures: [] });
    expect(sources.guardrail.reads.at(-1)).toEqual({ from: new Date(0), to: later });
    const healed = await getExperiment(deps(later), seed.admin, id);
    expect(healed.experiment.polling).toMatchObject({ failures: 0, error: null });
    expect(healed.sources[1]).toMatchObject({
      status: "ok",
      lastReadAt: later,
      polledUntil: later,
      // The last error stays on record, dated, under a newer successful read.
      lastError: { code: "unavailable", at },
    });
    const outcome = await getOutcome(deps(later), seed.admin, "health-outage");
    expect(outcome.sources).toMatchObject([
      { metric: "checkout_abandonment_rate", role: "primary", status: "ok", experiments: 1, failingExperiments: 0 },
      { metric: "payment_error_rate", role: "guardrail", status: "ok", experiments: 1, failingExperiments: 0 },
    ]);
  });

  it("still fails the poll (for the job's retry) when no source could be read", async () => {
    reset();
    const id = await runningExperiment("health-all-down");
    sources.primary.behaviour = "down";
    sources.guardrail.behaviour = "down";
    const at = new Date(START.getTime() + 2 * HOUR);
    await expect(pollExperiment(deps(at), id)).rejects.toMatchObject({ code: "unavailable" });
    const detail = await getExperiment(deps(at), seed.admin, id);
    expect(detail.experiment.polling.failures).toBe(1);
    expect(detail.sources.map((s) => s.status)).toEqual(["failing", "failing"]);
    const outcome = await getOutcome(deps(at), seed.admin, "health-all-down");
    expect(outcome.sources.map((s) => [s.role, s.status, s.failingExperiments])).toEqual([
      ["primary", "failing", 1],
      ["guardrail", "failing", 1],
    ]);
  });
});

describe("a source's rate limit", () => {
  it("holds the source back without a request until it allows one, then catches up from the watermark", async () => {
    reset();
    const id = await runningExperiment("health-throttle");
    const first = new Date(START.getTime() + 2 * HOUR);
    await pollExperiment(deps(first), id);
    const guardrailSeries = async () =>
      (await signals.listSeriesOfExperiment(t.db, id)).find((s) => s.role === "guardrail")!;
    expect((await guardrailSeries()).polledUntil).toEqual(new Date(START.getTime() + 2 * HOUR));

    // The guardrail's source answers 429 with Retry-After 2 h.
    sources.guardrail.behaviour = "rate_limited";
    const limited = new Date(START.getTime() + 3 * HOUR);
    const polled = await pollExperiment(deps(limited), id);
    expect(polled).toMatchObject({
      status: "polled",
      failures: [{ role: "guardrail", code: "rate_limited", throttled: true }],
    });
    const detail = await getExperiment(deps(limited), seed.admin, id);
    // A rate limit slows the source; it is not a failed poll.
    expect(detail.experiment.polling).toMatchObject({ failures: 0, error: null });
    expect(detail.sources[1]).toMatchObject({
      status: "throttled",
      throttledUntil: new Date(limited.getTime() + 2 * HOUR),
      throttleNote: "429 Too Many Requests: quota of 60 queries an hour spent",
      polledUntil: new Date(START.getTime() + 2 * HOUR),
    });
    expect(await sourcesStatus(t.db, limited)).toMatchObject({
      throttled: [
        {
          connector: "postgres",
          source: "payments database (payment_attempts)",
          series: 1,
          until: new Date(limited.getTime() + 2 * HOUR).toISOString(),
        },
      ],
    });

    // Within the throttle: the signal is read, the guardrail's source is not asked at all.
    sources.guardrail.behaviour = "answer";
    const guardrailReads = sources.guardrail.reads.length;
    const primaryReads = sources.primary.reads.length;
    const held = new Date(limited.getTime() + HOUR);
    const during = await pollExperiment(deps(held), id);
    expect(during).toMatchObject({ failures: [{ role: "guardrail", code: "rate_limited", throttled: true }] });
    expect(sources.guardrail.reads.length).toBe(guardrailReads);
    expect(sources.primary.reads.length).toBe(primaryReads + 1);

    // Once the source allows it, the read starts at the old watermark: every hour missed is stored.
    const after = new Date(limited.getTime() + 2 * HOUR + 1000);
    const caught = await pollExperiment(deps(after), id);
    expect(caught).toMatchObject({ failures: [] });
    expect(sources.guardrail.reads.at(-1)).toEqual({ from: new Date(START.getTime() + 2 * HOUR), to: after });
    const points = await signals.listPoints(t.db, (await guardrailSeries()).id, null);
    expect([...new Set(points.map((p) => (p.ts.getTime() - START.getTime()) / HOUR))]).toEqual([1, 2, 3, 4, 5]);
    const healed = await getExperiment(deps(after), seed.admin, id);
    expect(healed.sources[1]).toMatchObject({ status: "ok", throttledUntil: null, lastReadAt: after });
    expect((await sourcesStatus(t.db, after)).throttled).toEqual([]);
  });
});
