/**
 * The demo's outcome over the API: every ASOS comparison with metric 1 proposed,
 * approved, built and launched, and the clock run to the last checkpoint as the
 * worker would run it (99 experiments, about 170 gates; about two minutes). Its
 * answer stays under 20 KB (it was over 100 KB with every gate embedded); its
 * experiments and gates are all in their paged lists.
 */
import { buildTestApp } from "@outcome-runtime/api/test-app";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadAsos } from "../scripts/demo/asos";
import { type AsosWorld, createAsosWorld, OUTCOME } from "./support/asos-world";

let world: AsosWorld;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let close: () => Promise<void>;

beforeAll(async () => {
  const { comparisons } = await loadAsos();
  const withMetric1 = comparisons.filter((c) => (c.metrics[1]?.length ?? 0) > 0);
  const lastDay = Math.max(...withMetric1.map((c) => c.metrics[1]?.at(-1)?.day ?? 0));
  world = await createAsosWorld(withMetric1.map((c) => c.key));
  await world.advanceTo(lastDay);
  const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 1 });
  app = await buildTestApp(world.t.db, redis);
  close = async () => {
    await app.close();
    redis.disconnect();
  };
}, 900_000);

afterAll(async () => {
  await close?.();
  await world?.close();
});

async function get(url: string) {
  const response = await app.inject({ method: "GET", url, headers: { authorization: `Bearer ${world.pm.key}` } });
  expect(response.statusCode, url).toBe(200);
  return { bytes: Buffer.byteLength(response.body), body: response.json() };
}

async function all(url: string): Promise<{ id: string }[]> {
  const items: { id: string }[] = [];
  let cursor: string | null = null;
  do {
    const page = await get(`${url}${url.includes("?") ? "&" : "?"}limit=200${cursor ? `&cursor=${cursor}` : ""}`);
    items.push(...page.body.items);
    cursor = page.body.nextCursor;
  } while (cursor !== null);
  return items;
}

describe("the demo's outcome", () => {
  it("answers GET /v1/outcomes/:id in under 20 KB, with every experiment and gate a page away", async () => {
    const detail = await get(`/v1/outcomes/${OUTCOME}`);
    expect(detail.bytes).toBeLessThan(20_000);
    const experiments = await all(`/v1/outcomes/${OUTCOME}/experiments`);
    expect(experiments).toHaveLength(world.ids.size);
    const gates = await all(`/v1/gates?outcomeId=${detail.body.outcome.id}`);
    expect(new Set(gates.map((g) => g.id)).size).toBe(gates.length);
    // The portfolio review, a launch approval per experiment, and the analysis reviews the clock opened.
    expect(gates.length).toBeGreaterThan(world.ids.size + 1);
    const counted = Object.values(detail.body.gateCounts as Record<string, Record<string, number>>)
      .flatMap((byStatus) => Object.values(byStatus))
      .reduce((n, c) => n + c, 0);
    expect(counted).toBe(gates.length);
    expect(Object.values(detail.body.experimentCounts as Record<string, number>).reduce((n, c) => n + c, 0)).toBe(
      world.ids.size,
    );
  });
});
