import { describe, expect, it } from "vitest";
import type { ConnectorContext } from "./connector";
import { ConnectorError } from "./connector-error";
import { CONNECTOR_TYPES, createConnector } from "./create-connector";

const context: ConnectorContext = {
  env: {},
  metricKind: "proportion",
  defaultDatabaseUrl: "postgres://u:s3cret@db.example:5432/app",
};

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
  it("knows postgres, mixpanel, csv and replay (another name for csv)", () => {
    expect(CONNECTOR_TYPES).toEqual(["postgres", "mixpanel", "csv", "replay"]);
    expect(createConnector({ type: "replay", path: "a.csv" }, context).type).toBe("csv");
    expect(createConnector({ type: "csv", path: "a.csv" }, context).type).toBe("csv");
  });

  it("refuses an unknown type, listing the known ones", () => {
    const error = failure(() => createConnector({ type: "bigquery" }, context));
    expect(error.code).toBe("invalid_config");
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('unknown connector type "bigquery"; known types: postgres, mixpanel, csv, replay');
  });

  it("refuses unknown fields, naming them and the fields the type takes", () => {
    const error = failure(() => createConnector({ type: "postgres", querry: "SELECT 1" }, context));
    expect(error.code).toBe("invalid_config");
    expect(error.message).toContain('unknown field "querry"');
    expect(error.message).toContain("query, series_query, database_url_env, timeout, max_rows");
  });

  it("accepts durations as written and as normalised seconds", () => {
    const written = createConnector({ type: "postgres", query: "SELECT 1", timeout: "2m" }, context);
    const normalised = createConnector({ type: "postgres", query: "SELECT 1", timeout: 120 }, context);
    expect(written.describe()).toContain("timeout 2m");
    expect(normalised.describe()).toContain("timeout 2m");
    expect(
      failure(() => createConnector({ type: "postgres", query: "SELECT 1", timeout: "2 minutes" }, context)).message,
    ).toBe(
      'postgres connector: timeout: "2 minutes" is not a duration; write a number and a unit, e.g. 30s, 15m or 6h',
    );
    expect(
      failure(() => createConnector({ type: "postgres", query: "SELECT 1", max_rows: 0 }, context)).details.field,
    ).toBe("max_rows");
  });

  describe("postgres", () => {
    it("reports a SQL mistake with its line and column", () => {
      const error = failure(() =>
        createConnector({ type: "postgres", query: "SELECT 1\nWHERE x = :experimnt" }, context),
      );
      expect(error.code).toBe("invalid_config");
      expect(error.message).toMatch(
        /^postgres connector: query \(line 2, column 11\): unknown parameter :experimnt; the parameters are/,
      );
      expect(
        failure(() => createConnector({ type: "postgres", query: "SELECT 1; DROP TABLE t" }, context)).message,
      ).toContain("more than one statement");
    });

    it("reads the connection string from the variable database_url_env names, and never shows it", () => {
      const connector = createConnector(
        { type: "postgres", query: "SELECT 1", database_url_env: "ANALYTICS_DATABASE_URL" },
        { ...context, env: { ANALYTICS_DATABASE_URL: "postgres://reader:hunter2@analytics.internal:6432/events" } },
      );
      expect(connector.describe()).toBe(
        "postgres analytics.internal:6432/events (ANALYTICS_DATABASE_URL), timeout 30s, at most 10000 rows",
      );
      expect(connector.describe()).not.toContain("hunter2");
      expect(createConnector({ type: "postgres", query: "SELECT 1" }, context).describe()).not.toContain("s3cret");
    });

    it("names a missing variable and how to fix it", () => {
      const error = failure(() =>
        createConnector({ type: "postgres", query: "SELECT 1", database_url_env: "ANALYTICS_DATABASE_URL" }, context),
      );
      expect(error.message).toBe(
        "postgres connector: database_url_env: the environment variable ANALYTICS_DATABASE_URL is not set; set ANALYTICS_DATABASE_URL to the connection string (postgres://...) in the environment of the worker",
      );
      const noDefault = failure(() =>
        createConnector({ type: "postgres", query: "SELECT 1" }, { env: {}, metricKind: "mean" }),
      );
      expect(noDefault.details.field).toBe("database_url_env");
      expect(
        failure(() =>
          createConnector({ type: "postgres", query: "SELECT 1", database_url_env: "postgres://x" }, context),
        ).message,
      ).toContain("is not an environment variable name");
    });

    it("has no outcome series without a series_query", async () => {
      const connector = createConnector({ type: "postgres", query: "SELECT 1" }, context);
      await expect(connector.fetchOutcomeSeries({ from: new Date(0), to: new Date() })).rejects.toMatchObject({
        code: "unsupported",
      });
      await connector.close();
    });
  });

  describe("mixpanel", () => {
    const env = { MP_USER: "sa.user", MP_SECRET: "sa-secret" };
    const base = {
      type: "mixpanel",
      project_id: 2741933,
      event: "order_completed",
      username_env: "MP_USER",
      secret_env: "MP_SECRET",
    };

    it("needs the service account variables, by name", () => {
      expect(
        failure(() => createConnector({ ...base, username_env: undefined }, { ...context, env })).message,
      ).toContain("username_env: is missing");
      expect(failure(() => createConnector(base, context)).message).toContain(
        "the environment variable MP_USER is not set",
      );
      const connector = createConnector(base, { ...context, env });
      expect(connector.describe()).toBe(
        'mixpanel project 2741933 (us): unique users of "order_completed", units = unique users of "$experiment_started" by "Variant name"',
      );
      expect(connector.describe()).not.toContain("sa-secret");
    });

    it("needs value_property for a mean, and checks region, project_id and api_url", () => {
      expect(failure(() => createConnector(base, { ...context, env, metricKind: "mean" })).details.field).toBe(
        "value_property",
      );
      expect(failure(() => createConnector({ ...base, region: "asia" }, { ...context, env })).message).toContain(
        'region: "asia" is not one of us, eu, in',
      );
      expect(
        failure(() => createConnector({ ...base, project_id: "my-project" }, { ...context, env })).details.field,
      ).toBe("project_id");
      expect(failure(() => createConnector({ ...base, api_url: "ftp://x" }, { ...context, env })).details.field).toBe(
        "api_url",
      );
    });
  });

  describe("csv", () => {
    it("checks the column mapping", () => {
      expect(
        failure(() => createConnector({ type: "csv", path: "a.csv", columns: { time: "day" } }, context)).message,
      ).toContain("columns.time: is not a column the connector reads");
      expect(failure(() => createConnector({ type: "csv", path: "a.csv", speed: 0 }, context)).details.field).toBe(
        "speed",
      );
    });
  });
});
