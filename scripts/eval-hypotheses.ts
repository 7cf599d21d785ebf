/**
 * `pnpm eval:hypotheses`: runs the hypothesis generator on every example
 * outcome in `examples/outcomes/` and scores each portfolio on what can be
 * checked without a person (see docs/hypotheses.md, "The eval").
 *
 * For each outcome: parse → `hypothesisInput` (no learnings, no failures) →
 * `gateway.run("generate_hypotheses")` → `screenHypotheses` → score; then a
 * second run with one planted, relevant, won learning to see whether it is
 * used. The generator is the rules engine when no LLM is configured, or the
 * provider `llmConfigFromEnv` picks (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`,
 * `OPENAI_BASE_URL`, `OUTCOME_RUNTIME_LLM_PROVIDER`, `OUTCOME_RUNTIME_LLM_MODELS`).
 *
 * Options: `--no-write` (do not update docs/hypotheses.md),
 * `--max-cost-usd <n>` (cap per outcome, default 0.25).
 * Environment: `EVAL_POSTGRES_URL` (admin URL, default
 * postgres://postgres@127.0.0.1:5432/postgres); the eval creates and drops
 * `outcome_runtime_eval_<pid>` on that server.
 *
 * Exit status: 0 when every outcome reaches the pass mark, 1 when one does
 * not (or fewer than 10 outcomes were found), 2 on a setup error.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Actor } from "@outcome-runtime/core";
import {
  type Gateway,
  type GenerateHypothesesOutput,
  type LlmConfig,
  type LlmResult,
  llmConfigFromEnv,
  validateOutput,
} from "@outcome-runtime/llm";
import { bootstrap, createGateway, hypothesisInput, PORTFOLIO_SIZE, screenHypotheses } from "@outcome-runtime/runtime";
import { parseOutcome } from "@outcome-runtime/spec";
import { createEvalDatabase, type EvalDatabase } from "./eval/eval-database";
import { plantLearning } from "./eval/planted-learning";
import {
  type Check,
  costCheck,
  DEFAULT_MAX_COST_USD,
  forbiddenCheck,
  forbiddenTouches,
  learningsCheck,
  learningUse,
  mechanismsCheck,
  type OutcomeRow,
  PASS_MARK,
  predictionsCheck,
  renderReport,
  replaceBetweenMarkers,
  rowPassed,
  schemaCheck,
} from "./eval/score";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const EXAMPLES_DIR = "examples/outcomes";
const DOC = "docs/hypotheses.md";
const SCHEMA = "schemas/llm/generate_hypotheses.output.schema.json";
const MIN_OUTCOMES = 10;
const ACTOR: Actor = { id: "eval-hypotheses", name: "pnpm eval:hypotheses", role: "system" };

type Run = LlmResult<GenerateHypothesesOutput>;

interface Context {
  readonly gateway: Gateway;
  readonly workspaceId: string;
  readonly schema: Record<string, unknown>;
  readonly maxCostUsd: number;
}

function describeGenerator(config: LlmConfig): string {
  switch (config.provider) {
    case "rules":
      return "`rules`, the offline engine (no LLM key set)";
    case "anthropic":
      return `\`anthropic\`, model \`${config.models.generate_hypotheses}\` (ANTHROPIC_API_KEY)`;
    case "openai-compatible":
      return `\`openai-compatible\` at ${config.openai?.baseURL ?? "?"}, model \`${config.models.generate_hypotheses}\``;
    default: {
      const never: never = config.provider;
      throw new Error(`unknown provider ${String(never)}`);
    }
  }
}

function sourceOf(run: Run): string {
  return run.fallbackReason === null ? run.source : `${run.source} (fallback: ${run.fallbackReason})`;
}

function errorRow(outcome: string, error: string, runs: readonly Run[] = []): OutcomeRow {
  return {
    outcome,
    source: runs.map(sourceOf).join(", ") || "–",
    checks: [],
    costUsd: runs.reduce((s, r) => s + r.costUsd, 0),
    inputTokens: runs.reduce((s, r) => s + r.usage.inputTokens, 0),
    outputTokens: runs.reduce((s, r) => s + r.usage.outputTokens, 0),
    error,
  };
}

async function evaluate(ctx: Context, file: string): Promise<OutcomeRow> {
  const parsed = parseOutcome(readFileSync(`${ROOT}${file}`, "utf8"), { file });
  if (!parsed.ok) {
    const first = parsed.errors[0];
    return errorRow(file, `invalid outcome: ${first ? `${first.line}:${first.column} ${first.message}` : "?"}`);
  }
  const spec = parsed.spec;
  const slug = spec.id;
  const outcome = { slug, name: spec.name };
  const forbidden = spec.constraints?.scope?.forbidden_paths ?? [];
  const context = { workspaceId: ctx.workspaceId, actor: ACTOR, channel: "system" as const };
  const runs: Run[] = [];
  try {
    const input = hypothesisInput(outcome, spec, [], []);
    const first = await ctx.gateway.run("generate_hypotheses", input, context);
    runs.push(first);
    const issues = validateOutput(ctx.schema, first.output);
    if (issues.length > 0) return { ...errorRow(slug, "", runs), checks: [schemaCheck(issues)], error: null };
    const proposed = first.output.hypotheses;
    const portfolio = screenHypotheses(spec, proposed, []).kept.slice(0, PORTFOLIO_SIZE);

    const plant = plantLearning(
      input,
      proposed.map((h) => h.mechanism_key),
    );
    let use: { cited: boolean; adopted: boolean } | null = null;
    let secondIssues: { path: string; message: string }[] = [];
    if (plant !== null) {
      const second = await ctx.gateway.run(
        "generate_hypotheses",
        hypothesisInput(outcome, spec, [plant.learning], []),
        context,
      );
      runs.push(second);
      secondIssues = validateOutput(ctx.schema, second.output);
      if (secondIssues.length === 0) {
        const again = screenHypotheses(spec, second.output.hypotheses, []).kept.slice(0, PORTFOLIO_SIZE);
        use = learningUse(again, plant.planted);
      }
    }

    const costUsd = runs.reduce((s, r) => s + r.costUsd, 0);
    const checks: Check[] = [
      schemaCheck([...issues, ...secondIssues.map((i) => ({ ...i, path: `(run 2) ${i.path}` }))]),
      mechanismsCheck(portfolio, PORTFOLIO_SIZE),
      predictionsCheck(portfolio, spec.target.direction),
      forbiddenCheck(portfolio, forbidden, forbiddenTouches(proposed, forbidden)),
      secondIssues.length > 0
        ? { name: "learnings_used", passed: false, detail: "✗ run 2 output invalid" }
        : learningsCheck(plant?.planted ?? null, use),
      costCheck(costUsd, ctx.maxCostUsd),
    ];
    const sources = [...new Set(runs.map(sourceOf))];
    return {
      outcome: slug,
      source: sources.join(", "),
      checks,
      costUsd,
      inputTokens: runs.reduce((s, r) => s + r.usage.inputTokens, 0),
      outputTokens: runs.reduce((s, r) => s + r.usage.outputTokens, 0),
      error: null,
    };
  } catch (error) {
    return errorRow(slug, error instanceof Error ? error.message : String(error), runs);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { "no-write": { type: "boolean", default: false }, "max-cost-usd": { type: "string" } },
  });
  const maxCostUsd = values["max-cost-usd"] === undefined ? DEFAULT_MAX_COST_USD : Number(values["max-cost-usd"]);
  if (!Number.isFinite(maxCostUsd) || maxCostUsd < 0) {
    console.error(`--max-cost-usd: expected a non-negative number, got "${values["max-cost-usd"]}"`);
    return 2;
  }
  const config = llmConfigFromEnv(process.env);
  const generator = describeGenerator(config);
  const files = readdirSync(`${ROOT}${EXAMPLES_DIR}`)
    .filter((f) => f.endsWith(".yaml") || f.endsWith(".yml"))
    .sort()
    .map((f) => `${EXAMPLES_DIR}/${f}`);
  console.log(`Evaluating the hypothesis generator on ${files.length} outcomes; generator: ${generator}.`);

  const schema = JSON.parse(readFileSync(`${ROOT}${SCHEMA}`, "utf8")) as Record<string, unknown>;
  let database: EvalDatabase | undefined;
  const cleanUp = async () => {
    await database?.drop();
  };
  const onSignal = () => {
    void cleanUp().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const rows: OutcomeRow[] = [];
  try {
    database = await createEvalDatabase();
    const { workspaceId } = await bootstrap({ db: database.db }, {});
    const ctx: Context = { gateway: createGateway({ db: database.db, config }), workspaceId, schema, maxCostUsd };
    for (const file of files) {
      const row = await evaluate(ctx, file);
      rows.push(row);
      console.log(`  ${rowPassed(row) ? "pass" : "FAIL"}  ${row.outcome}`);
    }
  } finally {
    await cleanUp();
  }

  const report = renderReport(rows, { provider: generator, maxCostUsd });
  console.log(`\n${report}\n`);
  console.log(
    `Pass mark: ${PASS_MARK.required.join(" and ")} required, at most ${PASS_MARK.maxFailed} other check failed.`,
  );
  if (!values["no-write"]) {
    const path = `${ROOT}${DOC}`;
    writeFileSync(path, replaceBetweenMarkers(readFileSync(path, "utf8"), report));
    console.log(`Wrote the table into ${DOC}.`);
  }
  if (files.length < MIN_OUTCOMES) {
    console.error(`expected at least ${MIN_OUTCOMES} outcomes in ${EXAMPLES_DIR}, found ${files.length}`);
    return 1;
  }
  const failing = rows.filter((r) => !rowPassed(r)).map((r) => r.outcome);
  if (failing.length > 0) {
    console.error(`${failing.length} outcome(s) below the pass mark: ${failing.join(", ")}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(2);
  },
);
