/**
 * The dashboard in a real browser (playwright-core driving Debian's Chromium,
 * headless) on the demo's data: the API serves the built app (`pnpm build`),
 * the runtime polls and analyses the ASOS comparisons on a simulated clock,
 * and a PM signs in, follows an outcome to an experiment, decides its analysis
 * review with a reason and finds the learning. A second test watches a new
 * analysis arrive without a reload. axe-core checks the main pages.
 * Screenshots go to the folder the test prints.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { buildTestApp } from "@outcome-runtime/api/test-app";
import { gates, outcomes, signals } from "@outcome-runtime/db";
import { getExperiment } from "@outcome-runtime/runtime";
import { analysisFixture, deleteRedisKeys, freePort } from "@outcome-runtime/testing";
import { Redis } from "ioredis";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AsosWorld, createAsosWorld, OUTCOME } from "./support/asos-world";

const root = fileURLToPath(new URL("..", import.meta.url));
const WEB_ROOT = `${root}services/web/dist/`;
const SHOTS = `${root}.tmp/screenshots/dashboard`;
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const WINNER = "asos-ee6ff7-v1";
const RUNNING = "asos-e4b7b9-v1";
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

let world: AsosWorld;
let redis: Redis;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let browser: Browser;
let baseUrl: string;
const prefix = `test-ui-${process.pid}`;

beforeAll(async () => {
  if (!existsSync(`${WEB_ROOT}index.html`)) {
    throw new Error(`the dashboard is not built (${WEB_ROOT}index.html is missing): run \`pnpm build\` first`);
  }
  mkdirSync(SHOTS, { recursive: true });
  process.stdout.write(`dashboard screenshots: ${SHOTS}\n`);
  world = await createAsosWorld([WINNER, "asos-c3d89d-v1", RUNNING]);
  await world.advanceTo(12);
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 1 });
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  app = await buildTestApp(world.t.db, redis, {
    publicUrl: baseUrl,
    webRoot: WEB_ROOT,
    queuePrefix: prefix,
    rateLimitNamespace: `${prefix}:rate-limit:`,
    streamIntervalMs: 200,
  });
  await app.listen({ port, host: "127.0.0.1" });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  if (redis) {
    await deleteRedisKeys(redis, prefix);
    redis.disconnect();
  }
  await world?.close();
});

async function signIn(page: Page, key: string): Promise<void> {
  await page.goto(`${baseUrl}/signin`);
  await page.getByTestId("api-key-input").fill(key);
  await page.getByTestId("sign-in-button").click();
  await page.waitForURL((url) => !url.pathname.startsWith("/signin"));
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/** axe-core on the current page: the serious and critical violations. */
async function axe(page: Page): Promise<AxeViolation[]> {
  await page.addScriptTag({ content: AXE_SOURCE });
  // A string: the callback runs in the page, where axe and document exist.
  const violations = (await page.evaluate("axe.run(document).then((r) => r.violations)")) as AxeViolation[];
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}

describe("the dashboard on the demo's data", () => {
  it("takes a PM from the outcome to the experiment, decides its analysis review, and finds the learning", async () => {
    // bypassCSP: only so the test can inject axe-core; the app itself runs under its CSP.
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
    const page = await context.newPage();
    const violations: Record<string, AxeViolation[]> = {};
    try {
      await signIn(page, world.pm.key);
      await expect.poll(() => page.getByTestId("connection-pill").getAttribute("data-state")).toBe("live");

      // Outcomes: the card of the demo's outcome.
      const card = page.locator(`[data-testid=outcome-card][data-slug=${OUTCOME}]`);
      await card.waitFor();
      expect(await card.textContent()).toContain("ASOS experiments, metric 1");
      await shot(page, "1-outcomes");
      violations.outcomes = await axe(page);

      // The outcome, its signal and its lists: the pending gates, the experiments and the revisions, each read
      // from its own paged endpoint (the outcome's answer carries only their counts).
      const listRequests: string[] = [];
      page.on("request", (r) => {
        const url = new URL(r.url());
        if (/^\/v1\/(gates|outcomes\/[^/]+\/(experiments|revisions))$/.test(url.pathname)) {
          listRequests.push(`${url.pathname}${url.search}`);
        }
      });
      await card.getByRole("link").first().click();
      await page.waitForURL(/\/outcomes\//);
      const winnerCard = page.locator(`[data-testid=experiment-card][data-key=${WINNER}]`);
      await winnerCard.waitFor();
      await expect.poll(() => page.getByTestId("experiment-card").count()).toBe(3);
      const pendingGate = page.getByTestId("outcome-pending-gate").first();
      await pendingGate.waitFor();
      expect(await pendingGate.getAttribute("data-kind")).toBe("analysis_review");
      await expect.poll(() => page.getByTestId("outcome-revision").count()).toBe(1);
      const { outcomeId } = (await getExperiment({ db: world.t.db }, world.seed.admin, WINNER)).experiment;
      expect(listRequests).toEqual(
        expect.arrayContaining([
          expect.stringMatching(new RegExp(`^/v1/gates\\?outcomeId=${outcomeId}&status=pending&limit=\\d+$`)),
          expect.stringMatching(new RegExp(`^/v1/outcomes/${outcomeId}/experiments\\?limit=\\d+$`)),
          expect.stringMatching(new RegExp(`^/v1/outcomes/${outcomeId}/revisions\\?limit=\\d+$`)),
        ]),
      );
      await shot(page, "2-outcome");
      violations.outcome = await axe(page);

      // The winner: analysing, with its result chart drawn from the analyses.
      await winnerCard.getByRole("link").first().click();
      await page.waitForURL(/\/experiments\//);
      await expect.poll(() => page.getByTestId("experiment-state").getAttribute("data-state")).toBe("analysing");
      const chart = page.getByTestId("result-chart");
      await chart.waitFor();
      expect(Number(await chart.getAttribute("data-points"))).toBeGreaterThanOrEqual(2);
      expect(await page.locator("[data-testid=result-chart] canvas").count()).toBeGreaterThan(0);
      expect(await page.getByTestId("significance-meter").getAttribute("data-significant")).toBe("true");
      // Its sources (the signal and each other metric): the ASOS tables in Postgres, read without error.
      const sourceRows = page.locator("[data-testid=source-health] tbody tr");
      await expect.poll(() => sourceRows.count()).toBeGreaterThan(0);
      for (const row of await sourceRows.all()) {
        expect(await row.getAttribute("data-status")).toBe("ok");
        expect(await row.locator("td").nth(1).innerText()).toMatch(/^postgres\n/);
      }
      await shot(page, "3-experiment");
      violations.experiment = await axe(page);

      // The inbox, then the analysis review: ship, with a reason.
      await page.getByTestId("pending-gate-link").click();
      await page.waitForURL(/\/gates\//);
      await page.getByTestId("context-package").waitFor();
      await shot(page, "4-gate");
      violations.gate = await axe(page);
      await page.getByTestId("gate-reason").fill("the always-valid interval excludes zero; ship it");
      await page.getByTestId("gate-decision-ship").click();
      await page.getByTestId("decision-confirmation").waitFor();
      const record = (await page.getByTestId("decision-result").textContent()) ?? "";
      expect(record.toLowerCase()).toContain("ship");
      expect(record).toContain("the always-valid interval excludes zero; ship it");
      await shot(page, "5-decided");

      const decided = await getExperiment({ db: world.t.db }, world.seed.admin, world.ids.get(WINNER)!);
      expect(decided.experiment.state).toBe("shipped");
      const review = decided.gates.find((g) => g.kind === "analysis_review")!;
      expect(review.decision).toMatchObject({
        decision: "ship",
        channel: "web",
        decidedBy: world.pm.caller.principal.name,
        reason: "the always-valid interval excludes zero; ship it",
      });

      // The learning library has it.
      await page.goto(`${baseUrl}/learnings`);
      const learning = page.getByTestId("learning-item").filter({ hasText: "ee6ff7" });
      await learning.first().waitFor();
      expect(await learning.first().textContent()).toContain("ship");
      await shot(page, "6-learnings");
      violations.learnings = await axe(page);

      await page.goto(`${baseUrl}/gates`);
      await page.getByRole("heading", { level: 1 }).waitFor();
      await shot(page, "7-inbox");
      violations.inbox = await axe(page);

      await page.goto(`${baseUrl}/usage`);
      await page.getByTestId("budget-month").waitFor();
      violations.usage = await axe(page);
      await page.goto(`${baseUrl}/audit`);
      await page.getByTestId("audit-row").first().waitFor();
      expect(await page.getByTestId("audit-row").count()).toBeGreaterThan(5);
      await shot(page, "9-audit");
      violations.audit = await axe(page);
    } finally {
      await context.close();
    }
    expect(violations).toEqual({
      outcomes: [],
      outcome: [],
      experiment: [],
      gate: [],
      learnings: [],
      inbox: [],
      usage: [],
      audit: [],
    });
  });

  it("shows a new analysis without a reload", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    try {
      await signIn(page, world.pm.key);
      await page.goto(`${baseUrl}/experiments/${world.ids.get(RUNNING)}`);
      await expect.poll(() => page.getByTestId("connection-pill").getAttribute("data-state")).toBe("live");
      const chart = page.getByTestId("result-chart");
      await chart.waitFor();
      const before = Number(await chart.getAttribute("data-points"));
      // A marker that a reload would erase.
      await page.evaluate("window.__noReload = true");
      await world.advanceTo(world.day() + 3);
      await expect
        .poll(async () => Number(await chart.getAttribute("data-points")), { timeout: 15_000 })
        .toBeGreaterThan(before);
      expect(await page.evaluate("window.__noReload === true")).toBe(true);
      await shot(page, "8-live-phone");
    } finally {
      await context.close();
    }
  });

  it("shows each treatment's Holm-adjusted p-value and the secondary metrics, marked secondary", async () => {
    // An analysis of three treatments with a secondary metric, newer than any of the replay's.
    const experimentId = world.ids.get(RUNNING)!;
    const comparison = (arm: string, pValue: number, adjustedPValue: number) => ({
      arm,
      effect: 0.002,
      ci: [0.0001, 0.004] as [number, number],
      relativeLift: 0.03,
      relativeCi: [0.001, 0.06] as [number, number],
      pValue,
      adjustedPValue,
      logLambda: 2,
      fixedPValue: pValue,
      warnings: [],
    });
    const fixture = analysisFixture({
      workspaceId: world.seed.workspaceId,
      experimentId,
      ts: new Date(Date.now() + 365 * 86_400_000),
    });
    await signals.insertAnalysis(world.t.db, {
      ...fixture,
      pValue: 0.0123,
      details: {
        ...fixture.details,
        plannedPerArm: 5689.6,
        unadjustedPlannedPerArm: 10_000,
        comparisons: [
          { ...comparison("b", 0.0041, 0.0123), cuped: { theta: 0.8, varianceReduction: 0.4312 } },
          comparison("c", 0.2, 0.4),
          comparison("d", 0.9, 0.9),
        ],
        secondary: [
          {
            metric: "pages_per_session",
            kind: "mean",
            arm: "b",
            direction: "increase",
            effect: -0.25,
            ci: [-0.4, -0.1],
            relativeLift: -0.05,
            relativeCi: [-0.08, -0.02],
            pValue: 0.0007,
            warnings: [],
          },
          {
            metric: "revenue_per_session",
            kind: "ratio",
            arm: "b",
            direction: "increase",
            effect: 0.42,
            ci: [0.1, 0.75],
            relativeLift: 0.04,
            relativeCi: [0.01, 0.07],
            pValue: 0.003,
            warnings: [],
          },
        ],
      },
    });
    // bypassCSP: only so the test can inject axe-core; the app itself runs under its CSP.
    const context = await browser.newContext({ bypassCSP: true });
    const page = await context.newPage();
    try {
      await signIn(page, world.pm.key);
      await page.goto(`${baseUrl}/experiments/${experimentId}`);
      const table = page.getByTestId("comparisons");
      await table.waitFor();
      const rows = await table.locator("tbody tr").allInnerTexts();
      expect(rows).toHaveLength(3);
      expect(rows[0]).toContain("b");
      expect(rows[0]).toContain("0.0041");
      expect(rows[0]).toContain("0.012");
      expect(await table.locator("caption").innerText()).toContain("α/3");
      // CUPED: the headline comparison's variance reduction.
      expect(await page.getByTestId("variance-reduction").innerText()).toBe("43.1 %");
      expect(await page.getByTestId("cuped-planned").innerText()).toMatch(
        /planned sample 5,690 per arm instead of 10,000/,
      );
      const secondary = page.getByTestId("secondary-metrics");
      expect(await secondary.locator("tbody tr").allInnerTexts()).toEqual([
        expect.stringMatching(/pages_per_session \(secondary\)[\s\S]*b[\s\S]*−0\.25/),
        // A ratio metric says so, and its effect is a difference of ratios (a number, not percentage points).
        expect.stringMatching(
          /revenue_per_session \(secondary, ratio: numerator \/ denominator per unit\)[\s\S]*b[\s\S]*\+0\.42/,
        ),
      ]);
      // The primary metric's kind in words (the demo's signal is a proportion).
      expect(await page.getByTestId("metric-kind").textContent()).toBe("(proportion: share of units that converted)");
      expect(await secondary.locator("caption").innerText()).toContain("never pause, ship or stop");
      expect(await axe(page)).toEqual([]);
      await shot(page, "9-three-treatments");
    } finally {
      await context.close();
      await world.t.db
        .deleteFrom("analyses")
        .where("experiment_id", "=", experimentId)
        .where("ts", ">", new Date())
        .execute();
    }
  });

  it("asks the owner to confirm an achievement with the evidence, the series and what shipped; confirmed, the outcome can be reopened", async () => {
    const outcome = await outcomes.findOutcome(world.t.db, world.seed.workspaceId, OUTCOME, { bySlug: true });
    const evidence = {
      goal: 0.03,
      direction: "increase",
      latest: 0.0331,
      mean: 0.0325,
      bound: 0.0312,
      confidence: 0.95,
      points: 7,
      windowStart: "2026-11-26T00:00:00.000Z",
      windowEnd: "2026-12-02T00:00:00.000Z",
      sustainSeconds: 604_800,
    };
    const gate = await gates.insertPendingGate(world.t.db, {
      workspaceId: world.seed.workspaceId,
      outcomeId: outcome!.id,
      experimentId: null,
      kind: "achievement_review",
      assignees: [world.pm.caller.principal.name],
      backup: null,
      slaSeconds: 48 * 3600,
      onExpiry: "escalate",
      createdAt: new Date(),
      context: evidence,
    });
    const context = await browser.newContext({ bypassCSP: true });
    const page = await context.newPage();
    try {
      await signIn(page, world.pm.key);
      await page.goto(`${baseUrl}/gates/${gate!.id}`);
      const pkg = page.getByTestId("context-package");
      await pkg.waitFor();
      expect(await pkg.getAttribute("data-kind")).toBe("achievement_review");
      const said = await page.getByTestId("achievement-evidence").innerText();
      expect(said).toContain("7 d");
      expect(said).toContain("3.31 %");
      expect(await pkg.innerText()).toMatch(/One-sided 95 % bound[\s\S]*3\.12 %/);
      await page.getByTestId("signal-chart").waitFor();
      await page.getByTestId("achievement-shipped").waitFor();
      expect(await axe(page)).toEqual([]);
      await shot(page, "10-confirm-achieved");
      await page.getByTestId("gate-reason").fill("held all week");
      await page.getByTestId("gate-decision-approve").click();
      await page.getByTestId("decision-confirmation").waitFor();
      expect((await outcomes.findOutcomeById(world.t.db, outcome!.id))?.state).toBe("achieved");

      // The outcome's page offers to reopen it.
      await page.goto(`${baseUrl}/outcomes/${OUTCOME}`);
      await expect.poll(() => page.getByTestId("outcome-state").getAttribute("data-state")).toBe("achieved");
      await page.getByRole("button", { name: "Reopen" }).click();
      await expect.poll(() => page.getByTestId("outcome-state").getAttribute("data-state")).toBe("active");
      expect((await outcomes.findOutcomeById(world.t.db, outcome!.id))?.state).toBe("active");
    } finally {
      await context.close();
    }
  });
});
