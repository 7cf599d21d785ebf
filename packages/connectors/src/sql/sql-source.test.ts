/**
 * The SQL-source base on a driver of the test's own (the source's answers
 * scripted): retries with backoff on throttling only, an abort while
 * waiting, the per-source concurrency limit, the batched split.
 */
import { describe, expect, it } from "vitest";
import { ConnectorError } from "../connector-error";
import type { SqlRows } from "./result-rows";
import { createSqlSourceConnector, type SqlDriver, type SqlRequest, type SqlSourceDefinition } from "./sql-source";

const WINDOW = { experimentKey: "exp-1", arms: ["control", "treatment"], from: new Date(0), to: new Date(86_400_000) };
const ROWS: SqlRows = {
  fields: ["arm", "units", "sum", "sum_sq"],
  rows: [
    ["control", 10, 1, 1],
    ["treatment", 12, 3, 3],
  ],
};

/** A source whose driver answers with `answer(attempt, request)`; counts attempts and the most reads at once. */
function source(answer: (attempt: number, request: SqlRequest) => Promise<SqlRows>) {
  const seen = { attempts: 0, running: 0, mostAtOnce: 0 };
  const definition: SqlSourceDefinition = {
    type: "scripted",
    lexicon: {
      identifierQuotes: ['"'],
      stringQuotes: ["'"],
      backslashEscapes: false,
      hashComments: false,
      dollarStrings: false,
      dashCommentNeedsSpace: false,
      slashComments: false,
      executableComments: false,
    },
    fields: ["name"],
    createDriver(reader): SqlDriver {
      const name = reader.optionalString("name", "a name") ?? "scripted";
      return {
        location: name,
        async run(request) {
          seen.attempts++;
          seen.running++;
          seen.mostAtOnce = Math.max(seen.mostAtOnce, seen.running);
          try {
            return await answer(seen.attempts, request);
          } finally {
            seen.running--;
          }
        },
        async close() {},
      };
    },
  };
  const open = (settings: Record<string, unknown>) =>
    createSqlSourceConnector(
      definition,
      {
        type: "scripted",
        query: "SELECT arm, units, sum, sum_sq FROM t WHERE e = :experiment AND ts <= :to",
        ...settings,
      },
      { metricKind: "proportion" },
    );
  return { seen, open };
}

const throttled = () => new ConnectorError("rate_limited", "scripted: slow down", { retryAfterMs: null, details: {} });

describe("SQL source base", () => {
  it("retries a throttled read with backoff, then reads", async () => {
    const { seen, open } = source(async (attempt) => {
      if (attempt < 3) throw throttled();
      return ROWS;
    });
    const rows = await open({ retries: 3 }).fetchArmAggregates(WINDOW);
    expect(rows.map((r) => r.units)).toEqual([10, 12]);
    expect(seen.attempts).toBe(3);
  });

  it("gives up after `retries` and reports the source's throttling", async () => {
    const { seen, open } = source(async () => {
      throw throttled();
    });
    const error = await open({ retries: 1 })
      .fetchArmAggregates(WINDOW)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectorError);
    expect((error as ConnectorError).code).toBe("rate_limited");
    expect(seen.attempts).toBe(2);
  });

  it("never retries a query the source refused", async () => {
    const { seen, open } = source(async () => {
      throw new ConnectorError("query_failed", "scripted: syntax error", {});
    });
    const error = await open({ retries: 5 })
      .fetchArmAggregates(WINDOW)
      .catch((e: unknown) => e);
    expect((error as ConnectorError).code).toBe("query_failed");
    expect(seen.attempts).toBe(1);
  });

  it("reports an abort while waiting to retry as a timeout, and stops retrying", async () => {
    const { seen, open } = source(async () => {
      throw new ConnectorError("unavailable", "scripted: down", { retryAfterMs: 20_000 });
    });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const error = await open({ retries: 5 })
      .fetchArmAggregates(WINDOW, controller.signal)
      .catch((e: unknown) => e);
    expect((error as ConnectorError).code).toBe("timeout");
    expect(seen.attempts).toBe(1);
  });

  it("runs at most max_concurrency reads of one source at once, across its connectors", async () => {
    const { seen, open } = source(async () => {
      await new Promise((resolve) => setTimeout(resolve, 30));
      return ROWS;
    });
    const a = open({ max_concurrency: 2, name: "shared-source" });
    const b = open({ max_concurrency: 2, name: "shared-source" });
    await Promise.all([...Array.from({ length: 4 }, () => a.fetchArmAggregates(WINDOW)), b.fetchArmAggregates(WINDOW)]);
    expect(seen.attempts).toBe(5);
    expect(seen.mostAtOnce).toBe(2);
  });

  it("sends the batched form's parameters and splits its answer by experiment", async () => {
    let sent: SqlRequest | undefined;
    const { open } = source(async (_attempt, request) => {
      sent = request;
      return {
        fields: ["experiment", "arm", "units", "sum", "sum_sq"],
        rows: [
          ["exp-1", "control", 10, 1, 1],
          ["exp-2", "b", 5, 5, 6],
        ],
      };
    });
    const connector = open({
      query:
        "SELECT experiment, arm, units, sum, sum_sq FROM t WHERE e IN (:experiments) AND a IN (:arms) AND ts <= :to",
    });
    const answer = await connector.fetchBatchAggregates?.({
      experiments: [
        { experimentKey: "exp-1", arms: ["control", "treatment"], from: new Date(1000) },
        { experimentKey: "exp-2", arms: ["a", "b"], from: new Date(0) },
      ],
      to: new Date(86_400_000),
    });
    expect(sent?.values).toEqual({
      experiments: ["exp-1", "exp-2"],
      arms: ["control", "treatment", "a", "b"],
      from: new Date(0),
      to: new Date(86_400_000),
    });
    const first = answer?.get("exp-1");
    expect(Array.isArray(first) ? first.map((r) => r.units) : first).toEqual([10]);
    // sum_sq 6 ≠ sum 5 for a proportion: that experiment's error, not the batch's.
    expect(answer?.get("exp-2")).toBeInstanceOf(ConnectorError);
  });
});
