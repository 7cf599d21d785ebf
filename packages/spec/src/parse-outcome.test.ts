import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { makeHugeOutcome } from "../fixtures/huge.js";
import {
  DIAGNOSTIC_CODES,
  type Diagnostic,
  KNOWN_CONNECTORS,
  MAX_OUTCOME_BYTES,
  type OutcomeSpec,
  type ParseResult,
  parseOutcome,
} from "./index.js";

const read = (relative: string): string => readFileSync(fileURLToPath(new URL(relative, import.meta.url)), "utf8");
const example = read("../../../outcome.example.yaml");

function ok(result: ParseResult): Extract<ParseResult, { ok: true }> {
  if (!result.ok) throw new Error(`expected a valid outcome, got:\n${JSON.stringify(result.errors, null, 2)}`);
  return result;
}

function errors(result: ParseResult): Diagnostic[] {
  if (result.ok) throw new Error("expected diagnostics, got a valid outcome");
  return result.errors;
}

describe("parseOutcome: outcome.example.yaml", () => {
  const result = ok(parseOutcome(example, { file: "outcome.example.yaml" }));
  const spec: OutcomeSpec = result.spec;

  it("normalises percentages to fractions and durations to seconds", () => {
    expect(spec.target).toEqual({ direction: "decrease", value: 0.1, relative: true, sustain: 7 * 86_400 });
    expect(spec.horizon).toEqual({ seconds: 60 * 86_400 });
    expect(spec.horizon).toEqual({ seconds: 5_184_000 });
    expect(spec.signal.poll_interval).toBe(900);
    expect(spec.signal.baseline).toBe(0.68);
    expect(spec.gates?.portfolio_review?.sla).toBe(172_800);
    expect(spec.gates?.launch_approval?.sla).toBe(86_400);
    expect(spec.gates?.analysis_review?.sla).toBe(259_200);
    expect(spec.experiment_defaults.arms).toEqual([
      { name: "control", weight: 0.5 },
      { name: "treatment", weight: 0.5 },
    ]);
    expect(spec.experiment_defaults.expected_effect).toBe(0.03);
    expect(spec.experiment_defaults.max_duration).toBe(21 * 86_400);
    expect(spec.constraints.kill).toEqual({ max_harm: 0.03, relative: true });
    expect(spec.constraints.guardrails[0]?.max_regression).toBe(0.005);
    expect(spec.constraints.guardrails[0]?.relative).toBe(false);
  });

  it("applies schema defaults", () => {
    expect(spec.version).toBe(1);
    expect(spec.gates?.portfolio_review?.on_expiry).toBe("escalate");
    expect(spec.experiment_defaults.alpha).toBe(0.05);
    expect(spec.experiment_defaults.power).toBe(0.8);
    expect(spec.experiment_defaults.min_sample_per_arm).toBe(5000);
    expect(spec.experiment_defaults.min_duration).toBe(86_400);
    expect(spec.signal.connector).toMatchObject({ timeout: 30, max_rows: 10_000 });
  });

  it("keeps the connector settings", () => {
    expect(spec.signal.connector.type).toBe("postgres");
    expect(spec.signal.connector).toMatchObject({ database_url_env: "OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL" });
    expect(spec.constraints.scope?.forbidden_paths).toContain("**/*.sql");
  });

  it("returns the input as written, without defaults", () => {
    expect(result.input.target.value).toBe("10%");
    expect(result.input.horizon).toBe("60d");
    expect(result.input.experiment_defaults?.power).toBe(0.8);
    expect(result.input.gates?.portfolio_review?.on_expiry).toBeUndefined();
  });

  it("has a sha256 content hash", () => {
    expect(result.contentHash).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("parseOutcome: valid fixtures", () => {
  it("minimal.yaml takes every default", () => {
    const { spec } = ok(parseOutcome(read("../fixtures/valid/minimal.yaml")));
    expect(spec).toMatchObject({
      version: 1,
      signal: { poll_interval: 6 * 3600 },
      target: { value: 0.05, direction: "increase", relative: true },
      horizon: { seconds: 30 * 86_400 },
      constraints: { guardrails: [], max_concurrent_experiments: 3 },
      experiment_defaults: {
        alpha: 0.05,
        power: 0.8,
        arms: [
          { name: "control", weight: 0.5 },
          { name: "treatment", weight: 0.5 },
        ],
        min_sample_per_arm: 1000,
        min_duration: 86_400,
        max_duration: 28 * 86_400,
      },
    });
    expect(spec.gates).toBeUndefined();
    expect(spec.constraints.kill).toBeUndefined();
  });

  it("end-date-horizon.yaml keeps the end date and reads a mixpanel connector", () => {
    const { spec } = ok(parseOutcome(read("../fixtures/valid/end-date-horizon.yaml")));
    expect(spec.horizon).toEqual({ end_date: "2026-12-31" });
    expect(spec.target).toEqual({ value: 0.35, direction: "decrease", relative: false, sustain: 604_800 });
    expect(spec.signal.connector).toEqual({
      type: "mixpanel",
      project_id: 2741933,
      event: "onboarding_abandoned",
      username_env: "OUTCOME_RUNTIME_SOURCE_MIXPANEL_SERVICE_ACCOUNT_USERNAME",
      secret_env: "OUTCOME_RUNTIME_SOURCE_MIXPANEL_SERVICE_ACCOUNT_SECRET",
      region: "eu",
      filter: 'properties["platform"] == "web"',
      // defaults
      exposure_event: "$experiment_started",
      variant_property: "Variant name",
      experiment_property: "Experiment name",
      timeout: 60,
    });
    expect(spec.gates?.portfolio_review).toMatchObject({ sla: 14 * 86_400, on_expiry: "expire" });
    expect(spec.experiment_defaults.arms.map((a) => a.weight)).toEqual([0.34, 0.33, 0.33]);
    expect(spec.experiment_defaults.alpha).toBe(0.01);
  });

  it("mean-replay.yaml shares a connector through an alias", () => {
    const { spec } = ok(parseOutcome(read("../fixtures/valid/mean-replay.yaml")));
    expect(spec.signal.kind).toBe("mean");
    expect(spec.signal.poll_interval).toBe(90);
    expect(spec.constraints.guardrails[0]?.connector).toEqual({
      type: "replay",
      path: "data/order-value.csv",
      speed: 60,
    });
    expect(spec.experiment_defaults.mixture_variance).toBe(0.0004);
  });

  it("mixpanel-mean-csv.yaml reads the new connector fields, normalising their durations", () => {
    const { spec } = ok(parseOutcome(read("../fixtures/valid/mixpanel-mean-csv.yaml")));
    expect(spec.signal.poll_interval).toBe(6 * 3600);
    expect(spec.signal.connector).toMatchObject({
      type: "mixpanel",
      project_id: "2741933",
      workspace_id: 3301,
      value_property: "amount",
      timeout: 120,
    });
    expect(spec.constraints.guardrails[0]?.connector).toEqual({
      type: "csv",
      path: "data/refunds.csv",
      series_path: "data/refund-rate.csv",
      columns: { ts: "day", arm: "variant", value: "refunded" },
      snapshot_every: 3600,
    });
    expect(spec.constraints.guardrails[1]?.connector).toMatchObject({ type: "postgres", timeout: 120, max_rows: 500 });
    expect(spec.constraints.guardrails[1]?.connector).toHaveProperty("series_query");
    expect(spec.experiment_defaults).toMatchObject({ min_sample_per_arm: 2000, min_duration: 3 * 86_400 });
  });

  it("accepts csv and its other name replay, with the same fields", () => {
    const text = read("../fixtures/valid/mean-replay.yaml");
    const asCsv = ok(parseOutcome(text.replace("type: replay", "type: csv")));
    expect(asCsv.spec.signal.connector).toEqual({ type: "csv", path: "data/order-value.csv", speed: 60 });
    const bad = errors(parseOutcome(text.replace("    speed: 60", "    speed: 60\n    sped: 2")));
    // Once for the signal and once for the guardrail that shares the connector through an alias.
    expect(bad.map((e) => e.code)).toEqual(["unknown_key", "unknown_key"]);
    expect(bad[0]?.hint).toContain('did you mean "speed"?');
  });

  it("reads JSON as well as YAML", () => {
    const input = ok(parseOutcome(example)).input;
    const fromJson = ok(parseOutcome(JSON.stringify(input, null, "\t"), { file: "outcome.json" }));
    expect(fromJson.contentHash).toBe(ok(parseOutcome(example)).contentHash);
  });

  it("accepts `$schema` (for JSON files) and leaves it out of the spec", () => {
    const input = ok(parseOutcome(example)).input;
    const result = ok(parseOutcome(JSON.stringify({ $schema: "./schemas/outcome.schema.json", ...input })));
    expect(result.spec).not.toHaveProperty("$schema");
    expect(result.contentHash).toBe(ok(parseOutcome(example)).contentHash);
  });

  it("supports YAML merge keys for sharing connector settings", () => {
    const text = example
      .replace("  connector:\n    type: postgres", "  connector: &analytics\n    type: postgres")
      .replace(
        "      connector:\n        type: postgres\n        database_url_env: OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL\n",
        "      connector:\n        <<: *analytics\n",
      );
    expect(text).toContain("<<: *analytics");
    const { spec } = ok(parseOutcome(text));
    expect(spec.constraints.guardrails[0]?.connector).toMatchObject({
      type: "postgres",
      database_url_env: "OUTCOME_RUNTIME_SOURCE_ANALYTICS_DATABASE_URL",
    });
  });

  it("reports a merge key whose value is not a mapping at that value, with the fix", () => {
    const scalar = errors(parseOutcome("id: x\nsignal:\n  <<: 5\n"));
    expect(scalar).toEqual([
      expect.objectContaining({ code: "yaml_syntax", line: 3, column: 7, hint: expect.stringContaining("<<: *name") }),
    ]);
    expect(scalar[0]?.message).toContain("not the number 5");
    expect(errors(parseOutcome("<<: [1]"))[0]).toMatchObject({ code: "yaml_syntax", line: 1, column: 6 });
    expect(errors(parseOutcome("<<: [1]"))[0]?.message).toContain("not the number 1");
    // Through an alias of a scalar, or of a list that holds a scalar: at the alias.
    expect(errors(parseOutcome("a: &n 1\n<<: *n\n"))[0]).toMatchObject({ code: "yaml_syntax", line: 2, column: 5 });
    expect(errors(parseOutcome("a: &s [1]\nb:\n  <<: *s\n"))[0]).toMatchObject({ line: 3, column: 7 });
    expect(errors(parseOutcome("<<:\n"))[0]?.message).toContain("not an empty value");
    // A merge of an alias with no anchor is an unresolved alias; a quoted "<<" is an ordinary (unknown) key.
    expect(errors(parseOutcome("<<: *nope"))[0]).toMatchObject({ message: "alias *nope refers to no anchor" });
    expect(errors(parseOutcome('"<<": 5')).map((e) => e.code)).not.toContain("yaml_syntax");
  });

  it("reports an alias with no anchor at the alias, its name made visible", () => {
    expect(errors(parseOutcome("id: x\nname: *missing\n"))).toEqual([
      expect.objectContaining({
        code: "yaml_syntax",
        line: 2,
        column: 7,
        message: "alias *missing refers to no anchor",
      }),
    ]);
    expect(errors(parseOutcome("*\u2028"))[0]?.message).toBe("alias *\\u2028 refers to no anchor");
    expect(errors(parseOutcome("* "))[0]).toMatchObject({
      code: "yaml_syntax",
      hint: expect.stringContaining("quotes"),
    });
  });

  it("reads the file as YAML 1.2 even under a %YAML 1.1 directive", () => {
    const text = `%YAML 1.1\n---\n${read("../fixtures/valid/end-date-horizon.yaml").replace("name: Fewer users drop off during onboarding", "name: n")}`;
    const { spec } = ok(parseOutcome(text));
    expect(spec.name).toBe("n");
    expect(spec.horizon).toEqual({ end_date: "2026-12-31" });
  });
});

describe("parseOutcome: content hash", () => {
  const hash = ok(parseOutcome(example)).contentHash;

  it("ignores comments, blank lines, key order, quoting and the form of a percentage", () => {
    const reformatted = example
      .replace(/^#.*$/gm, "")
      .replace(
        "target:\n  direction: decrease\n  value: 10%\n  relative: true",
        'target:\n  relative: true\n  value: "10%" # ten percent\n  direction: decrease',
      )
      .replace("poll_interval: 15m", "poll_interval: '15m'")
      .replace("  alpha: 0.05\n  power: 0.8", "  power: 0.8\n\n  alpha: 5%");
    expect(reformatted).not.toBe(example);
    expect(reformatted).toContain('value: "10%" # ten percent');
    expect(ok(parseOutcome(reformatted)).contentHash).toBe(hash);
  });

  it("ignores a default written out", () => {
    const explicit = example.replace("    sla: 48h\n", "    sla: 48h\n    on_expiry: escalate\n");
    expect(ok(parseOutcome(explicit)).contentHash).toBe(hash);
  });

  it("changes when a value changes", () => {
    expect(ok(parseOutcome(example.replace("value: 10%", "value: 11%"))).contentHash).not.toBe(hash);
    expect(ok(parseOutcome(example.replace("sla: 24h", "sla: 25h"))).contentHash).not.toBe(hash);
  });

  it("changes when the order of arms changes (order matters in lists)", () => {
    const swapped = example.replace(
      "    - name: control\n      weight: 50%\n    - name: treatment\n      weight: 50%",
      "    - name: treatment\n      weight: 50%\n    - name: control\n      weight: 50%",
    );
    expect(ok(parseOutcome(swapped)).contentHash).not.toBe(hash);
  });
});

describe("parseOutcome: diagnostics", () => {
  it("reports the three independent mistakes of three-mistakes.yaml, each on its line", () => {
    const found = errors(parseOutcome(read("../fixtures/three-mistakes.yaml"), { file: "three-mistakes.yaml" }));
    expect(found.map(({ file, line, column, code, pointer }) => ({ file, line, column, code, pointer }))).toEqual([
      { file: "three-mistakes.yaml", line: 11, column: 18, code: "bad_duration", pointer: "/signal/poll_interval" },
      { file: "three-mistakes.yaml", line: 15, column: 3, code: "unknown_key", pointer: "/signal/descripton" },
      { file: "three-mistakes.yaml", line: 19, column: 10, code: "bad_percentage", pointer: "/target/value" },
    ]);
    expect(found[0]?.message).toBe('signal.poll_interval: "15 minutes" is not a duration');
    expect(found[0]?.hint).toContain("15m");
    expect(found[1]?.hint).toContain('did you mean "description"?');
  });

  it("uses outcome.yaml as the default file name", () => {
    expect(errors(parseOutcome(""))[0]?.file).toBe("outcome.yaml");
  });

  // How fast hostile documents are refused is measured by `pnpm bench` (docs/performance.md), not asserted here.
  it("refuses a 5 MB file without parsing it", () => {
    const huge = makeHugeOutcome(5 * 1024 * 1024);
    expect(huge.length).toBe(5 * 1024 * 1024);
    const found = errors(parseOutcome(huge));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ code: "file_too_large", line: 1, column: 1 });
    expect(found[0]?.message).toContain("5 MiB");
  });

  it("draws the size limit at MAX_OUTCOME_BYTES bytes of UTF-8", () => {
    expect(MAX_OUTCOME_BYTES).toBe(1024 * 1024);
    expect(makeHugeOutcome(MAX_OUTCOME_BYTES)).toHaveLength(MAX_OUTCOME_BYTES);
    const atLimit = parseOutcome(makeHugeOutcome(MAX_OUTCOME_BYTES));
    expect(atLimit.ok ? [] : atLimit.errors.map((e) => e.code)).not.toContain("file_too_large");
    expect(errors(parseOutcome(makeHugeOutcome(MAX_OUTCOME_BYTES + 1)))[0]?.code).toBe("file_too_large");
    // 400 000 three-byte characters are 1.2 MB though only 400 000 UTF-16 units.
    expect(errors(parseOutcome(`id: x\nname: ${"€".repeat(400_000)}\n`))[0]?.code).toBe("file_too_large");
  });

  it("reports an alias bomb as one diagnostic", () => {
    const found = errors(parseOutcome(read("../fixtures/invalid/alias-bomb.yaml")));
    expect(found).toHaveLength(1);
    expect(found[0]?.code).toBe("alias_bomb");
  });

  it("reports a wide alias bomb (one big list aliased a few times) as one diagnostic", () => {
    const list = `[${Array.from({ length: 5000 }, (_, i) => i).join(", ")}]`;
    const text = `id: x\nobjective: &big ${list}\ndescription: [${Array(10).fill("*big").join(", ")}]\n`;
    const found = errors(parseOutcome(text));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ code: "alias_bomb", line: 3 });
  });

  it("refuses a document with more values than any outcome needs, before validating it", () => {
    const keys = Array.from({ length: 25_000 }, (_, i) => `k${i}: ${i}`).join("\n");
    const found = errors(parseOutcome(`id: x\n${keys}\n`));
    expect(found.map((e) => e.code)).toEqual(["file_too_large"]);
  });

  it("caps a long list of mistakes with too_many_errors", () => {
    const keys = Array.from({ length: 300 }, (_, i) => `unknown_${i}: 1`).join("\n");
    const found = errors(parseOutcome(`${example}\n${keys}\n`));
    expect(found).toHaveLength(101);
    expect(found.at(-1)).toMatchObject({ code: "too_many_errors", message: "200 more errors not shown" });
  });

  it("reports absurd nesting instead of crashing", () => {
    const found = errors(parseOutcome(`id: x\nobjective: ${"[".repeat(100_000)}${"]".repeat(100_000)}\n`));
    expect(found).toHaveLength(1);
    expect(found[0]?.code).toBe("too_deeply_nested");
  });

  it("refuses 10 000-deep nesting before yaml builds it (V8 aborted the process: RegExpCompiler Allocation failed)", () => {
    // The API fuzz's bodies: at this depth yaml's recursion hit the stack's edge, where V8 compiled a regular
    // expression and aborted the whole process, on most runs.
    for (const text of [
      `${"[".repeat(10_000)}${"]".repeat(10_000)}`,
      `${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}`,
    ]) {
      expect(errors(parseOutcome(text))).toEqual([expect.objectContaining({ code: "too_deeply_nested", line: 1 })]);
    }
    expect(errors(parseOutcome(`${"- ".repeat(300)}x`))[0]?.code).toBe("too_deeply_nested");
    expect(errors(parseOutcome(`id: x\nobjective: ${"[".repeat(100)}${"]".repeat(100)}\n`))[0]?.code).not.toBe(
      "too_deeply_nested",
    );
  });

  it("points an unknown key at the key, and a missing field at the mapping's key", () => {
    const found = errors(parseOutcome(example.replace("  relative: true\n\nhorizon", "  relatve: true\n\nhorizon")));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ code: "unknown_key", pointer: "/target/relatve", column: 3 });
    const missing = errors(parseOutcome(example.replace("  relative: true\n\nhorizon", "\nhorizon")));
    expect(missing).toHaveLength(1);
    expect(missing[0]).toMatchObject({ code: "missing_field", pointer: "/target/relative", column: 1 });
    expect(example.split("\n")[(missing[0]?.line ?? 0) - 1]).toBe("target:");
  });

  it("checks connector types against options.connectors", () => {
    expect(KNOWN_CONNECTORS).toEqual([
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
      "datadog",
      "prometheus",
      "posthog",
      "amplitude",
    ]);
    const heap = example.replace("type: postgres", "type: heap");
    const found = errors(parseOutcome(heap));
    expect(found.map((e) => e.code)).toEqual(["unknown_connector"]);
    expect(found[0]?.hint).toContain("postgres, mixpanel, csv, replay");
    expect(parseOutcome(heap, { connectors: [...KNOWN_CONNECTORS, "heap"] }).ok).toBe(true);
    const onlyReplay = errors(parseOutcome(example, { connectors: ["replay"] }));
    expect(onlyReplay.map((e) => e.code)).toEqual(["unknown_connector", "unknown_connector"]);
  });

  it("reports every independent mistake at once, sorted by position", () => {
    const text = example
      .replace("owner: maya.pm@acme.example", "owner: maya")
      .replace("kind: proportion\n  unit", "kind: rate\n  unit")
      .replace("sla: 24h", "sla: 1 day")
      .replace("max_harm: 3%", "max_harm: 0%")
      .replace("  min_sample_per_arm: 5000", "  min_sample_per_arm: 5000\n  mixture_variance: 0.1");
    const found = errors(parseOutcome(text));
    expect(found.map((e) => e.code)).toEqual([
      "bad_email",
      "invalid_value",
      "out_of_range",
      "bad_duration",
      "conflicting_options",
    ]);
    const lines = found.map((e) => e.line);
    expect([...lines].sort((a, b) => a - b)).toEqual(lines);
  });

  it("never throws, whatever it is given", () => {
    for (const input of [
      null,
      undefined,
      42,
      {},
      [],
      "\0",
      "{",
      "*a",
      "- - -",
      "? [a]\n: b",
      "\uFEFF",
      "a: !!binary x",
    ]) {
      const result = parseOutcome(input as unknown as string);
      expect(result.ok).toBe(false);
      for (const e of errors(result)) {
        expect(e.line).toBeGreaterThanOrEqual(1);
        expect(e.column).toBeGreaterThanOrEqual(1);
        expect(Object.keys(DIAGNOSTIC_CODES)).toContain(e.code);
      }
    }
  });
});

describe("parseOutcome: ratio metrics", () => {
  const ratioQuery =
    "SELECT arm, count(*) AS units, sum(revenue) AS sum, sum(revenue * revenue) AS sum_sq, sum(sessions) AS den_sum, " +
    "sum(sessions * sessions) AS den_sum_sq, sum(revenue * sessions) AS num_den_sum FROM per_user WHERE experiment_key = :experiment GROUP BY arm";
  const outcome = (metrics: string): string => `id: revenue-per-session
name: Raise the revenue per session
owner: maya.pm@acme.example
signal:
  metric: revenue_per_session
  kind: ratio
  unit: user
  connector:
    type: postgres
    query: "${ratioQuery}"
target:
  value: 5%
  direction: increase
  relative: true
horizon: 10w
${metrics}`;

  it("takes kind: ratio for the signal and for a secondary metric", () => {
    const { spec } = ok(
      parseOutcome(
        outcome(`secondary_metrics:
  - metric: pages_per_session
    kind: ratio
    connector:
      type: postgres
      query: "${ratioQuery}"
`),
      ),
    );
    expect(spec.signal.kind).toBe("ratio");
    expect(spec.secondary_metrics?.[0]?.kind).toBe("ratio");
  });

  it("refuses kind: ratio on a guardrail, naming the field, the value and the fix", () => {
    const [error, ...rest] = errors(
      parseOutcome(
        outcome(`constraints:
  guardrails:
    - metric: errors_per_page_view
      kind: ratio
      direction: decrease
      max_regression: 1%
      connector:
        type: postgres
        query: "${ratioQuery}"
`),
        { file: "outcome.yaml" },
      ),
    );
    expect(rest).toEqual([]);
    expect(error).toMatchObject({ code: "invalid_value", line: 19 });
    expect(error?.message).toBe('constraints.guardrails[0].kind: "ratio" is not one of proportion, mean');
    expect(error?.hint).toContain("a ratio metric cannot be a guardrail");
    expect(error?.hint).toContain("report it under secondary_metrics");
  });

  it("refuses a ratio read from Mixpanel once, before any connector check", () => {
    const source = outcome("").replace(
      /connector:\n {4}type: postgres\n {4}query: .*\n/u,
      "connector:\n    type: mixpanel\n    project_id: 2741933\n    username_env: OUTCOME_RUNTIME_SOURCE_MIXPANEL_USERNAME\n    secret_env: OUTCOME_RUNTIME_SOURCE_MIXPANEL_SECRET\n    event: Order completed\n    value_property: amount\n",
    );
    let checked = 0;
    const found = errors(
      parseOutcome(source, {
        checkConnector: () => {
          checked += 1;
          return null;
        },
      }),
    );
    expect(found.map((e) => e.code)).toEqual(["invalid_connector"]);
    expect(found[0]?.message).toContain("signal.connector: a ratio metric cannot be read from Mixpanel");
    expect(found[0]?.hint).toContain("read the ratio with a postgres or csv connector");
    expect(checked).toBe(0);
  });
});

describe("prometheus connectors", () => {
  const prometheus = (latency: boolean) =>
    latency
      ? "    type: prometheus\n    url: http://prometheus.internal:9090\n    latency: http_request_duration_seconds\n    threshold: 0.3\n"
      : '    type: prometheus\n    url: http://prometheus.internal:9090\n    requests: http_requests_total\n    errors: http_requests_total{code=~"5.."}\n';
  const outcome = (signalConnector: string, kind = "proportion", guardrail = "") => `id: checkout-health
name: Keep checkout healthy
owner: maya.pm@acme.example
signal:
  metric: checkout_conversion
  kind: ${kind}
  unit: user
  connector:
${signalConnector}target:
  value: 5%
  direction: increase
  relative: true
horizon: 10w
${guardrail}`;
  const postgres =
    '    type: postgres\n    query: "SELECT arm, units, sum, sum_sq FROM t WHERE e = :experiment AND ts <= :to"\n';

  it("takes an error-rate signal, and a latency threshold as a guardrail", () => {
    ok(parseOutcome(outcome(prometheus(false))));
    const guardrail = `constraints:
  guardrails:
    - metric: checkout_p99_slow_share
      kind: proportion
      direction: decrease
      max_regression: 0.5%
      relative: false
      connector:
${prometheus(true).replaceAll(/^ {4}/gmu, "        ")}`;
    const { spec } = ok(parseOutcome(outcome(postgres, "proportion", guardrail)));
    expect(spec.constraints?.guardrails?.[0]?.connector).toMatchObject({ type: "prometheus", threshold: 0.3 });
  });

  it("refuses a latency quantile as the outcome's signal, naming the field and the fix", () => {
    const found = errors(parseOutcome(outcome(prometheus(true))));
    expect(found.map((e) => e.code)).toEqual(["invalid_connector"]);
    expect(found[0]?.message).toContain("signal.connector.latency: a latency quantile cannot be the outcome's signal");
    expect(found[0]?.hint).toContain("use it as a guardrail");
  });

  it("refuses a mean read from Prometheus: it gives no sum of squares", () => {
    const found = errors(parseOutcome(outcome(prometheus(false), "mean")));
    expect(found.map((e) => e.code)).toEqual(["invalid_connector"]);
    expect(found[0]?.message).toContain("a mean metric cannot be read from Prometheus");
    expect(found[0]?.hint).toContain("kind: proportion");
  });
});
