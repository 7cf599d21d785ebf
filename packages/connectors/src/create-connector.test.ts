import { describe, expect, it } from "vitest";
import type { ConnectorContext } from "./connector";
import { ConnectorError } from "./connector-error";
import { CONNECTOR_TYPES, connectorReadKind, createConnector, readsInBatches } from "./create-connector";

const DATABASE = { database_url_secret: "analytics-db" };
const context: ConnectorContext = {
  metricKind: "proportion",
  credentials: { database_url: "postgres://u:s3cret@db.example:5432/app" },
};
/** A query with the parameters every `query` must use. */
const QUERY = "SELECT arm, units, sum, sum_sq FROM t WHERE experiment = :experiment AND ts <= :to";

function failure(fn: () => unknown): ConnectorError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConnectorError) return error;
    throw error;
  }
  throw new Error("expected a ConnectorError");
}

describe("createConnector", () => {
  it("knows postgres, mixpanel, csv and replay (another name for csv), and the SQL sources", () => {
    expect(CONNECTOR_TYPES).toEqual([
      "postgres",
      "mixpanel",
      "csv",
      "replay",
      "mysql",
      "duckdb",
      "clickhouse",
      "snowflake",
      "bigquery",
      "ga4",
      "posthog",
      "amplitude",
      "prometheus",
      "datadog",
    ]);
    expect(createConnector({ type: "replay", path: "a.csv" }, context).type).toBe("csv");
    expect(createConnector({ type: "csv", path: "a.csv" }, context).type).toBe("csv");
  });

  it("refuses an unknown type, listing the known ones", () => {
    const error = failure(() => createConnector({ type: "heap" }, context));
    expect(error.code).toBe("invalid_config");
    expect(error.retryable).toBe(false);
    expect(error.message).toContain(
      'unknown connector type "heap"; known types: postgres, mixpanel, csv, replay, mysql, duckdb, clickhouse, snowflake, bigquery, ga4, posthog, amplitude, prometheus, datadog',
    );
  });

  it("refuses unknown fields, naming them and the fields the type takes", () => {
    const error = failure(() => createConnector({ type: "postgres", querry: "SELECT 1", ...DATABASE }, context));
    expect(error.code).toBe("invalid_config");
    expect(error.message).toContain('unknown field "querry"');
    expect(error.message).toContain("query, series_query, database_url_env, database_url_secret, timeout, max_rows");
  });

  it("accepts durations as written and as normalised seconds", () => {
    const pg = { type: "postgres", query: QUERY, ...DATABASE };
    const written = createConnector({ ...pg, timeout: "2m" }, context);
    const normalised = createConnector({ ...pg, timeout: 120 }, context);
    expect(written.describe()).toContain("timeout 2m");
    expect(normalised.describe()).toContain("timeout 2m");
    expect(failure(() => createConnector({ ...pg, timeout: "2 minutes" }, context)).message).toBe(
      'postgres connector: timeout: "2 minutes" is not a duration; write a number and a unit, e.g. 30s, 15m or 6h',
    );
    expect(failure(() => createConnector({ ...pg, max_rows: 0 }, context)).details.field).toBe("max_rows");
  });

  it("refuses a statement timeout over an hour, and caps the timeout at the worker's poll timeout", () => {
    const pg = { type: "postgres", query: QUERY, ...DATABASE };
    const month = failure(() => createConnector({ ...pg, timeout: "30d" }, context));
    expect(month.details.field).toBe("timeout");
    expect(month.message).toContain("longer than the most a signal query may run (1h)");
    expect(createConnector({ ...pg, timeout: "10m" }, { ...context, maxTimeoutMs: 60_000 }).describe()).toContain(
      "timeout 1m",
    );
  });

  describe("postgres", () => {
    it("reports a SQL mistake with its line and column", () => {
      const error = failure(() =>
        createConnector({ type: "postgres", query: "SELECT 1\nWHERE x = :experimnt", ...DATABASE }, context),
      );
      expect(error.code).toBe("invalid_config");
      expect(error.message).toMatch(
        /^postgres connector: query \(line 2, column 11\): unknown parameter :experimnt; the parameters are/,
      );
      expect(
        failure(() => createConnector({ type: "postgres", query: `${QUERY}; DROP TABLE t`, ...DATABASE }, context))
          .message,
      ).toContain("more than one statement");
    });

    it("needs :experiment and :to in the query, and :to in the series query", () => {
      const noExperiment = failure(() =>
        createConnector(
          { type: "postgres", query: "SELECT arm, 1 AS units FROM t WHERE ts <= :to", ...DATABASE },
          context,
        ),
      );
      expect(noExperiment.details).toMatchObject({ sqlField: "query", problem: "the query does not use :experiment" });
      const series = failure(() =>
        createConnector(
          { type: "postgres", query: QUERY, series_query: "SELECT ts, value FROM s", ...DATABASE },
          context,
        ),
      );
      expect(series.details).toMatchObject({ sqlField: "series_query", problem: "the query does not use :to" });
    });

    it("uses the connection string the runtime resolved, and shows where it came from, never its value", () => {
      const connector = createConnector(
        { type: "postgres", query: QUERY, database_url_env: "OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL" },
        { ...context, credentials: { database_url: "postgres://reader:hunter2@analytics.internal:6432/events" } },
      );
      expect(connector.describe()).toBe(
        "postgres analytics.internal:6432/events (database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL), timeout 30s, at most 10000 rows",
      );
      expect(connector.describe()).not.toContain("hunter2");
      expect(createConnector({ type: "postgres", query: QUERY, ...DATABASE }, context).describe()).toContain(
        "(database_url_secret: analytics-db)",
      );
    });

    it("has no default database: the connection string is named, one way, and only source variables may be", () => {
      const none = failure(() => createConnector({ type: "postgres", query: QUERY }, context));
      expect(none.details.field).toBe("database_url_secret");
      expect(none.message).toContain("is missing (so is database_url_env)");
      const both = failure(() =>
        createConnector(
          { type: "postgres", query: QUERY, database_url_secret: "a", database_url_env: "OUTCOME_RUNTIME_SOURCE_A" },
          context,
        ),
      );
      expect(both.message).toContain("both database_url_env and database_url_secret are set");
      for (const name of ["DATABASE_URL", "OUTCOME_RUNTIME_WEBHOOK_SECRET", "REDIS_URL", "ANTHROPIC_API_KEY"]) {
        const error = failure(() =>
          createConnector({ type: "postgres", query: QUERY, database_url_env: name }, context),
        );
        expect(error.details).toMatchObject({ field: "database_url_env", value: name });
        expect(error.message).toContain(
          `"${name}" is not a source variable: only names starting with OUTCOME_RUNTIME_SOURCE_ may be used`,
        );
      }
      expect(
        failure(() => createConnector({ type: "postgres", query: QUERY, database_url_env: "postgres://x" }, context))
          .message,
      ).toContain("is not the name of a source environment variable");
      expect(
        failure(() => createConnector({ type: "postgres", query: QUERY, database_url_secret: "Bad Name" }, context))
          .message,
      ).toContain('"Bad Name" is not a secret name');
      const unresolved = failure(() =>
        createConnector({ type: "postgres", query: QUERY, ...DATABASE }, { metricKind: "proportion" }),
      );
      expect(unresolved.message).toBe(
        "postgres connector: database_url_secret: the workspace secret analytics-db was not resolved",
      );
    });

    it("has no outcome series without a series_query", async () => {
      const connector = createConnector({ type: "postgres", query: QUERY, ...DATABASE }, context);
      await expect(connector.fetchOutcomeSeries({ from: new Date(0), to: new Date() })).rejects.toMatchObject({
        code: "unsupported",
      });
      await connector.close();
    });
  });

  describe("amplitude", () => {
    const credentials = { api_key: "amp-api-key", secret_key: "amp-secret-key" };
    const base = {
      type: "amplitude",
      project_id: 318_204,
      event: "Order completed",
      exposure_event: "[Experiment] Exposure",
      api_key_env: "OUTCOME_RUNTIME_SOURCE_AMPLITUDE_API_KEY",
      secret_key_secret: "amplitude-secret-key",
    };
    const withCredentials = { ...context, credentials };

    it("needs both keys, by name, and never shows them", () => {
      expect(failure(() => createConnector({ ...base, api_key_env: undefined }, withCredentials)).message).toContain(
        "api_key_secret: is missing (so is api_key_env)",
      );
      expect(failure(() => createConnector(base, context)).message).toContain(
        "the environment variable OUTCOME_RUNTIME_SOURCE_AMPLITUDE_API_KEY was not resolved",
      );
      const connector = createConnector(base, withCredentials);
      expect(connector.describe()).toBe(
        'amplitude project 318204 (us, UTC): unique users of "Order completed", units = unique users of "[Experiment] Exposure" by user properties "experiment" and "arm"',
      );
      expect(connector.describe()).not.toContain("amp-secret-key");
      expect(connector.describe()).not.toContain("amp-api-key");
    });

    it("reads in batches unless it is a funnel or batch: false", () => {
      expect(readsInBatches(base)).toBe(true);
      expect(readsInBatches({ ...base, batch: false })).toBe(false);
      const funnel = { ...base, funnel: ["Checkout started"] };
      expect(readsInBatches(funnel)).toBe(false);
      expect(createConnector(funnel, withCredentials).fetchBatchAggregates).toBeUndefined();
      expect(createConnector(base, withCredentials).fetchBatchAggregates).toBeTypeOf("function");
    });

    it("checks event, funnel, the mean's two properties, the time zone, region and api_url", () => {
      const { event: _event, ...noEvent } = base;
      expect(failure(() => createConnector(noEvent, withCredentials)).message).toContain("event: is missing");
      expect(failure(() => createConnector({ ...base, funnel: "b" }, withCredentials)).message).toContain(
        'funnel: "b" is not a list of at most 7 event names',
      );
      const mean = { ...withCredentials, metricKind: "mean" as const };
      expect(failure(() => createConnector(base, mean)).details.field).toBe("value_property");
      const noSquare = failure(() => createConnector({ ...base, value_property: "amount" }, mean));
      expect(noSquare.details.field).toBe("value_squared_property");
      expect(noSquare.message).toContain("Amplitude's sums and formulas have no per-event square");
      expect(failure(() => createConnector({ ...base, value_property: "amount" }, withCredentials)).message).toContain(
        "value_property: is set, but the metric is a proportion",
      );
      expect(
        failure(() => createConnector({ ...base, project_timezone: "Mars/Olympus" }, withCredentials)).message,
      ).toContain('project_timezone: "Mars/Olympus" is not an IANA time zone');
      expect(failure(() => createConnector({ ...base, region: "in" }, withCredentials)).message).toContain(
        'region: "in" is not one of us, eu',
      );
      expect(failure(() => createConnector({ ...base, project_id: "abc" }, withCredentials)).details.field).toBe(
        "project_id",
      );
      expect(failure(() => createConnector(base, { ...withCredentials, metricKind: "ratio" })).code).toBe(
        "invalid_config",
      );
      const eu = createConnector({ ...base, api_url: "https://analytics.eu.amplitude.com/" }, withCredentials);
      expect(eu.describe()).toContain("(analytics.eu.amplitude.com, UTC)");
      const elsewhere = failure(() =>
        createConnector({ ...base, api_url: "https://amplitude.attacker.example" }, withCredentials),
      );
      expect(elsewhere.code).toBe("source_refused");
      expect(elsewhere.message).toContain("https://amplitude.com, https://analytics.eu.amplitude.com");
    });
  });

  describe("mixpanel", () => {
    const credentials = { username: "sa.user", secret: "sa-secret" };
    const base = {
      type: "mixpanel",
      project_id: 2741933,
      event: "order_completed",
      username_env: "OUTCOME_RUNTIME_SOURCE_MP_USER",
      secret_env: "OUTCOME_RUNTIME_SOURCE_MP_SECRET",
    };

    it("needs the service account, by name", () => {
      expect(
        failure(() => createConnector({ ...base, username_env: undefined }, { ...context, credentials })).message,
      ).toContain("username_secret: is missing (so is username_env)");
      expect(failure(() => createConnector(base, context)).message).toContain(
        "the environment variable OUTCOME_RUNTIME_SOURCE_MP_USER was not resolved",
      );
      const connector = createConnector(base, { ...context, credentials });
      expect(connector.describe()).toBe(
        'mixpanel project 2741933 (us): unique users of "order_completed", units = unique users of "$experiment_started" by "Variant name"',
      );
      expect(connector.describe()).not.toContain("sa-secret");
    });

    it("needs value_property for a mean, and checks region, project_id and api_url", () => {
      const withCredentials = { ...context, credentials };
      expect(failure(() => createConnector(base, { ...withCredentials, metricKind: "mean" })).details.field).toBe(
        "value_property",
      );
      expect(failure(() => createConnector({ ...base, region: "asia" }, withCredentials)).message).toContain(
        'region: "asia" is not one of us, eu, in',
      );
      expect(failure(() => createConnector({ ...base, project_id: "my-project" }, withCredentials)).details.field).toBe(
        "project_id",
      );
      expect(failure(() => createConnector({ ...base, api_url: "ftp://x" }, withCredentials)).details.field).toBe(
        "api_url",
      );
    });

    it("talks only to Mixpanel's documented hosts, unless the operator allows another", () => {
      const withCredentials = { ...context, credentials };
      for (const api_url of ["https://eu.mixpanel.com/api/query", "https://in.mixpanel.com/api/query/"]) {
        expect(createConnector({ ...base, api_url }, withCredentials).describe()).toContain("mixpanel project");
      }
      for (const api_url of [
        "http://attacker.example/mp",
        "https://mixpanel.com.attacker.example/api/query",
        "https://user:pw@mixpanel.com/api/query",
        "http://mixpanel.com/api/query",
        "http://127.0.0.1:9/api/query",
      ]) {
        const error = failure(() => createConnector({ ...base, api_url }, withCredentials));
        expect([error.code, error.details.field]).toEqual(
          api_url.includes("@") ? ["invalid_config", "api_url"] : ["source_refused", "api_url"],
        );
      }
      const proxy = "https://mixpanel-proxy.internal/api/query";
      expect(failure(() => createConnector({ ...base, api_url: proxy }, withCredentials)).message).toContain(
        `SOURCE_API_URLS=mixpanel=${proxy}`,
      );
      const allowed = { ...withCredentials, allowedApiUrls: { mixpanel: [proxy] } };
      expect(createConnector({ ...base, api_url: proxy }, allowed).describe()).toContain("mixpanel-proxy.internal");
      // Allowed for another connector type is not allowed for this one.
      expect(
        failure(() =>
          createConnector({ ...base, api_url: proxy }, { ...withCredentials, allowedApiUrls: { amplitude: [proxy] } }),
        ).code,
      ).toBe("source_refused");
    });
  });

  describe("csv", () => {
    it("reads only files inside its directory", () => {
      const inDir = { ...context, baseDir: "/srv/outcome-runtime/sources" };
      expect(createConnector({ type: "csv", path: "team/a.csv" }, inDir).type).toBe("csv");
      for (const path of ["/etc/ssl/private/keys.csv", "../other-workspace/a.csv", "team/../../a.csv"]) {
        const error = failure(() => createConnector({ type: "csv", path }, inDir));
        expect(error.details).toMatchObject({ field: "path", value: path });
        expect(error.message).toContain("is outside the directory csv files are read from");
      }
      expect(
        failure(() => createConnector({ type: "csv", path: "a.csv", series_path: "../s.csv" }, inDir)).details.field,
      ).toBe("series_path");
    });

    it("checks the column mapping", () => {
      expect(
        failure(() => createConnector({ type: "csv", path: "a.csv", columns: { time: "day" } }, context)).message,
      ).toContain("columns.time: is not a column the connector reads");
      expect(failure(() => createConnector({ type: "csv", path: "a.csv", speed: 0 }, context)).details.field).toBe(
        "speed",
      );
    });
  });

  describe("posthog", () => {
    const base = { type: "posthog", project_id: 81234, personal_api_key_secret: "posthog-key", event: "purchase" };
    const withKey: ConnectorContext = { metricKind: "proportion", credentials: { personal_api_key: "phx_k" } };

    it("reads in batches with the built query or {experiments}, one experiment at a time with {experiment}", () => {
      expect(connectorReadKind("posthog")).toBe("posthog");
      expect(readsInBatches(base)).toBe(true);
      const one = { type: "posthog", query: "SELECT arm FROM events WHERE x = {experiment} AND t <= {to}" };
      expect(readsInBatches(one)).toBe(false);
      expect(readsInBatches({ ...one, query: one.query.replace("{experiment}", "{experiments}") })).toBe(true);
      expect(createConnector(base, withKey).describe()).toBe(
        'posthog project 81234 (us.posthog.com): persons who fired "purchase", units = persons with "$feature_flag_called" by "$feature_flag_response"',
      );
    });

    it("needs the personal API key the settings name", () => {
      const error = failure(() => createConnector(base, { metricKind: "proportion", credentials: {} }));
      expect(error.code).toBe("invalid_config");
      expect(error.message).toContain("personal_api_key");
    });
  });
});
