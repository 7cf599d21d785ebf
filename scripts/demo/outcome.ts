import { connectorSql } from "./asos";
import { DUCKDB_TABLES, duckdbConnectorSql } from "./duckdb-app";
import { mysqlConnectorSql } from "./mariadb-app";

/** Where the demo keeps the team's analytics (`pnpm demo --source ...`). */
export type DemoSource = "postgres" | "mariadb" | "duckdb";

/** The flag provider that owns the experiments' splits (`pnpm demo --flags unleash`). */
export interface DemoFlags {
  readonly provider: "unleash";
  /** The provider's API, e.g. `http://127.0.0.1:4242/api`. */
  readonly apiUrl: string;
  /** The variable holding its admin token, an `OUTCOME_RUNTIME_FLAGS_` one. */
  readonly tokenEnv: string;
}

/**
 * The demo's outcome file: ASOS metric 1 (binary) as the signal and metric 2
 * (continuous) as a guardrail, both read by the `postgres` connector from the
 * app database named by `OUTCOME_RUNTIME_SOURCE_ASOS_APP_DATABASE_URL` (with
 * `source: mariadb`, the `mysql` connector, from the same variable; with
 * `source: duckdb`, the `duckdb` connector, from the Parquet files of
 * duckdb-app.ts in the worker's SOURCE_CSV_DIR); a kill threshold; every
 * gate assigned to `pm`. With `flags`, a `flags:` block: the provider creates
 * each experiment's flag and serves the split the runtime asks for.
 */
export function demoOutcomeYaml(options: {
  id: string;
  pm: string;
  alpha: number;
  /** The team's analytics: `postgres` (default), `mariadb` (read by the `mysql` connector) or `duckdb` (files). */
  source?: DemoSource;
  /** A flag provider for the experiments' splits; none by default. */
  flags?: DemoFlags;
}): string {
  const { id: OUTCOME, pm: PM, alpha: ALPHA } = options;
  const indent = (text: string, n: number) =>
    text
      .trim()
      .split("\n")
      .map((l) => " ".repeat(n) + l)
      .join("\n");
  /** The `connector:` mapping's body for `metric`, indented by `n`. */
  const connector = (metric: number, n: number): string => {
    const source = options.source ?? "postgres";
    const settings =
      source === "duckdb"
        ? [
            "type: duckdb",
            "# The files are in the worker's SOURCE_CSV_DIR (.tmp/demo-duckdb, set by scripts/demo.ts).",
            "base_dir: .",
            "tables:",
            ...Object.entries(DUCKDB_TABLES).map(([name, file]) => `  ${name}: ${file}`),
          ]
        : [
            `type: ${source === "mariadb" ? "mysql" : "postgres"}`,
            "database_url_env: OUTCOME_RUNTIME_SOURCE_ASOS_APP_DATABASE_URL",
          ];
    const sql = source === "duckdb" ? duckdbConnectorSql : source === "mariadb" ? mysqlConnectorSql : connectorSql;
    return indent([...settings, "timeout: 10s", "query: |", indent(sql(metric), 2)].join("\n"), n);
  };
  return `# The demo's outcome, written by scripts/demo.ts. Signal: ASOS metric 1 (binary);
# guardrail: ASOS metric 2 (continuous), both read from the demo's app database.
version: 1
id: ${OUTCOME}
name: ASOS experiments, metric 1
owner: ${PM}
description: >
  Replays the ASOS Digital Experiments Dataset (Liu, Cardoso, Couturier & McCoy,
  NeurIPS 2021, CC BY 4.0) on a simulated clock. Metric 1 is binary and should go up;
  metric 2 is continuous and must not drop by more than 5 %.
signal:
  metric: asos_metric_1
  kind: proportion
  unit: user
  poll_interval: 1s
  connector:
${connector(1, 4)}
target:
  direction: increase
  value: 1%
  relative: true
horizon: 180d
constraints:
  guardrails:
    - metric: asos_metric_2
      kind: mean
      direction: increase
      max_regression: 5%
      relative: true
      connector:
${connector(2, 8)}
  kill:
    max_harm: 2%
    relative: true
  max_concurrent_experiments: 100
gates:
  portfolio_review: { assignees: [${PM}], sla: 72h }
  launch_approval: { assignees: [${PM}], sla: 24h }
  analysis_review: { assignees: [${PM}], sla: 72h }
experiment_defaults:
  alpha: ${ALPHA}
  power: 0.8
  min_sample_per_arm: 1000
  min_duration: 1d
  max_duration: 60d
  expected_effect: 1%
${
  options.flags === undefined
    ? ""
    : `flags:
  provider: ${options.flags.provider}
  api_url: ${options.flags.apiUrl}
  project: default
  environment: development
  stickiness: userId
  api_token_env: ${options.flags.tokenEnv}
`
}`;
}
