import { connectorSql } from "./asos";
import { mysqlConnectorSql } from "./mariadb-app";

/**
 * The demo's outcome file: ASOS metric 1 (binary) as the signal and metric 2
 * (continuous) as a guardrail, both read by the `postgres` connector (or, with
 * `source: mariadb`, the `mysql` connector) from the app database named by `OUTCOME_RUNTIME_SOURCE_ASOS_APP_DATABASE_URL`; a kill threshold; every gate
 * assigned to `pm`.
 */
export function demoOutcomeYaml(options: {
  id: string;
  pm: string;
  alpha: number;
  /** The team's analytics: `postgres` (default) or `mariadb` (read by the `mysql` connector). */
  source?: "postgres" | "mariadb";
}): string {
  const { id: OUTCOME, pm: PM, alpha: ALPHA } = options;
  const mariadb = options.source === "mariadb";
  const type = mariadb ? "mysql" : "postgres";
  const sql = mariadb ? mysqlConnectorSql : connectorSql;
  const indent = (text: string, n: number) =>
    text
      .trim()
      .split("\n")
      .map((l) => " ".repeat(n) + l)
      .join("\n");
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
    type: ${type}
    database_url_env: OUTCOME_RUNTIME_SOURCE_ASOS_APP_DATABASE_URL
    timeout: 10s
    query: |
${indent(sql(1), 6)}
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
        type: ${type}
        database_url_env: OUTCOME_RUNTIME_SOURCE_ASOS_APP_DATABASE_URL
        timeout: 10s
        query: |
${indent(sql(2), 10)}
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
`;
}
