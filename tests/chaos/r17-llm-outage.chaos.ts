/**
 * R17: an LLM outage. The API and the worker are configured for Anthropic
 * (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL: `llmConfigFromEnv`), and the
 * Anthropic API is a local server speaking its documented shapes
 * (@outcome-runtime/llm/test-support) that answers every call with
 * `529 overloaded_error` or not at all (the client's timeout fires).
 *
 * During the outage: hypotheses are generated through the API, and a
 * learning's summary job runs in the worker; both retry the provider with
 * backoff and then fall back to the rules engine visibly (the API answers
 * with `fallbackReason`, every call is metered in `llm_calls` with its
 * `fallback_reason`, the summary job completes with `kept`). Meanwhile the
 * kill-switch pauses a harmful experiment, its analysis review is decided
 * through the API, and the ingest of a steady experiment keeps its rate.
 *
 * Plus a static check: the kill-switch, analysis, poll and gate-decision
 * modules (packages/runtime/src/signals/*.ts, decide-gate.ts, and every module
 * they load) load no LLM client: not the LLM package's gateway or providers,
 * not an LLM SDK. (A decision writes its learning's rules sentence with the
 * package's pure `offline` entry, which the check follows and allows.)
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { signals } from "@outcome-runtime/db";
import { startFakeAnthropic } from "@outcome-runtime/llm/test-support";
import { learningJobId, NOTIFY_QUEUE } from "@outcome-runtime/runtime";
import { sleep, waitFor } from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the scenario reads the summary job's outcome from the notify queue
import { Queue } from "bullmq";
import { afterAll, describe, expect, it } from "vitest";
import { startApiProcess, startWorkerProcess, stopProcess } from "../support/processes";
import {
  activeOutcome,
  type Cleanups,
  caughtUp,
  createWorld,
  insertSource,
  launchExperiments,
  runCleanups,
  startSourceTicker,
  stateOf,
  type World,
} from "../support/world";
import { expectWithinLoadBound, report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const HYPOTHESIS_CALLS = scaled(6, 2);
const PHASE_MS = scaled(8000, 4000);
const LLM_TIMEOUT_MS = 1500;
const LLM_RETRY_BASE_MS = 200;

/** Analyses of the experiment written in [from, to). */
async function analysesBetween(world: World, experimentId: string, from: number, to: number): Promise<number> {
  const all = await signals.listAnalyses(world.t.db, experimentId, 100_000);
  return all.filter((a) => a.createdAt.getTime() >= from && a.createdAt.getTime() < to).length;
}

describe("R17: an LLM outage", () => {
  it("leaves the kill-switch, gate decisions and ingest untouched while LLM work falls back visibly", async () => {
    const started = Date.now();
    const world = await createWorld(cleanups);
    const outcomeId = await activeOutcome(world, "chaos-llm", 100, { pollInterval: "1s" });
    const [harmful, steady] = await launchExperiments(world, "chaos-llm", ["harmful", "steady"]);

    const anthropic = await startFakeAnthropic();
    cleanups.push(() => anthropic.close());
    // The outage: overloaded or silent, for every call made during the test.
    for (let i = 0; i < 400; i += 1) anthropic.enqueue(i % 3 === 2 ? { kind: "hang" } : { kind: "error", status: 529 });
    const llmEnv = {
      ANTHROPIC_API_KEY: "sk-ant-chaos-r17",
      ANTHROPIC_BASE_URL: anthropic.baseURL,
      OUTCOME_RUNTIME_LLM_TIMEOUT_MS: String(LLM_TIMEOUT_MS),
      OUTCOME_RUNTIME_LLM_MAX_RETRIES: "2",
      OUTCOME_RUNTIME_LLM_RETRY_BASE_MS: String(LLM_RETRY_BASE_MS),
      OUTBOUND_ALLOW: "127.0.0.1/32",
    };
    const api = await startApiProcess(
      {
        DATABASE_URL: world.t.url,
        REDIS_URL: world.redisUrl,
        OUTCOME_RUNTIME_API_KEY: world.seed.adminKey,
        QUEUE_PREFIX: world.prefix,
        ...llmEnv,
      },
      cleanups,
    );
    const auth = { authorization: `Bearer ${world.seed.adminKey}`, "content-type": "application/json" };
    const worker = await startWorkerProcess(world, cleanups, llmEnv);
    worker.ready.catch(() => {});
    // Booted: the health server listens once the worker reconciled and took its queues (a slow boot on a
    // loaded machine may outlast /readyz's 30 s wait; the scenario's own checks show the work is done).
    await waitFor(
      "the worker's /healthz",
      async () => {
        if (worker.proc.isGone()) throw new Error(`the worker exited:\n${worker.output()}`);
        const response = await fetch(`http://127.0.0.1:${worker.port}/healthz`).catch(() => null);
        return response?.status === 200;
      },
      { timeoutMs: 120_000, intervalMs: 50, diagnostics: worker.output },
    );
    const output = () => `${worker.output()}\n--- api ---\n${api.output()}`;

    // Baseline: the steady experiment's ingest with the LLM not in use.
    const ticker = startSourceTicker(world, ["steady"], 200, cleanups);
    await sleep(1500);
    const baselineFrom = Date.now();
    await sleep(PHASE_MS);
    const baselineTo = Date.now();

    // The outage phase: LLM work in the API and the worker, a harmful experiment, a gate decision.
    const outageFrom = Date.now();
    const ts = new Date();
    await insertSource(world, [
      { key: "harmful", arm: "control", ts, units: 5000, conversions: 1000 },
      { key: "harmful", arm: "treatment", ts, units: 5000, conversions: 500 },
    ]);
    const hypotheses = Array.from({ length: HYPOTHESIS_CALLS }, async () => {
      const t0 = Date.now();
      const response = await fetch(`${api.base}/v1/outcomes/${outcomeId}/hypotheses`, {
        method: "POST",
        headers: auth,
        body: "{}",
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown>, ms: Date.now() - t0 };
    });
    const pausedMs = await waitFor(
      "the kill-switch to pause the harmful experiment",
      async () => ((await stateOf(world, harmful!.id)) === "paused" ? Date.now() - outageFrom : undefined),
      { timeoutMs: 30_000, intervalMs: 20, diagnostics: output },
    );
    // The analysis review the pause opened, decided through the API while the LLM is down.
    const review = await waitFor(
      "the analysis review gate",
      async () => {
        const response = await fetch(`${api.base}/v1/gates?experimentId=${harmful!.id}&status=pending`, {
          headers: auth,
        });
        const page = (await response.json()) as { items?: { id: string; kind: string }[] };
        return page.items?.find((g) => g.kind === "analysis_review");
      },
      { timeoutMs: 20_000, intervalMs: 100, diagnostics: output },
    );
    const detail = (await (await fetch(`${api.base}/v1/gates/${review.id}`, { headers: auth })).json()) as {
      options: { decision: string }[];
    };
    const decision = detail.options.some((o) => o.decision === "roll_back") ? "roll_back" : detail.options[0]!.decision;
    const decideStart = Date.now();
    const decided = await fetch(`${api.base}/v1/gates/${review.id}/decision`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ decision, reason: "harm confirmed during the LLM outage" }),
    });
    const decideMs = Date.now() - decideStart;
    const decidedBody = (await decided.json()) as { learningId?: string | null; experiments?: { state: string }[] };
    const decidedState = decidedBody.experiments?.[0]?.state ?? null;
    const generated = await Promise.all(hypotheses);
    // Keep the outage phase as long as the baseline.
    await sleep(Math.max(0, outageFrom + PHASE_MS - Date.now()));
    const outageTo = Date.now();
    await ticker.stop();
    await waitFor("the steady experiment to catch up", () => caughtUp(world, [steady!]), {
      timeoutMs: 30_000,
      intervalMs: 200,
      diagnostics: output,
    });

    // The learning's summary job: retried against the provider, then the rules' sentence is kept.
    const notify = new Queue(NOTIFY_QUEUE, { connection: world.redis, prefix: world.prefix });
    cleanups.push(() => notify.close());
    const learningId = decidedBody.learningId ?? null;
    const summary =
      learningId === null
        ? null
        : await waitFor(
            "the learning summary job to finish",
            async () => {
              const job = await notify.getJob(learningJobId(learningId));
              return job?.finishedOn !== undefined ? job : undefined;
            },
            { timeoutMs: 60_000, intervalMs: 200, diagnostics: output },
          );
    const { rows: calls } = await world.runtime.query<{
      operation: string;
      fallback_reason: string | null;
      source: string;
      actor_id: string;
    }>("SELECT operation, fallback_reason, source, actor_id FROM llm_calls ORDER BY at");
    expect(await stopProcess(worker.proc)).toMatchObject({ code: 0 });
    const finalState = await stateOf(world, harmful!.id);

    const baseline = await analysesBetween(world, steady!.id, baselineFrom, baselineTo);
    const during = await analysesBetween(world, steady!.id, outageFrom, outageTo);
    const rate = (n: number, ms: number) => Math.round((n / (ms / 1000)) * 100) / 100;
    const baselineRate = rate(baseline, baselineTo - baselineFrom);
    const outageRate = rate(during, outageTo - outageFrom);
    const llmRequests = anthropic.requests.length;
    const summaryCalls = calls.filter((c) => c.operation === "summarize_learning");
    const hypothesisCalls = calls.filter((c) => c.operation === "generate_hypotheses");
    const fellBack = calls.filter((c) => c.fallback_reason !== null);
    report({
      id: "R17",
      title: "LLM outage",
      fault: "Anthropic answering 529 overloaded or hanging past the timeout",
      faults: llmRequests,
      lost: (decided.status === 200 ? 0 : 1) + (finalState === "paused" || finalState === decidedState ? 0 : 1),
      duplicated: 0,
      figures: {
        "provider requests": llmRequests,
        "LLM calls metered": calls.length,
        "calls fallen back": fellBack.length,
        "fallback reasons": [...new Set(fellBack.map((c) => c.fallback_reason))].join("/"),
        "hypothesis requests": generated.length,
        "hypotheses answered ms (max)": Math.max(...generated.map((g) => g.ms)),
        "kill-switch pause ms": pausedMs,
        "gate decision ms": decideMs,
        "gate decision": `${decision} → ${decidedState}`,
        "summary job": summary === null ? "none" : JSON.stringify(summary.returnvalue),
        "ingest analyses/s baseline": baselineRate,
        "ingest analyses/s outage": outageRate,
      },
      ms: Date.now() - started,
    });
    // The kill-switch paused the harmful experiment, and the gate decision applied, without waiting for the LLM:
    // the decision answered in less than one LLM retry cycle (3 attempts of up to 1.5 s, plus backoff), and
    // the learning's summary was the worker's call, after the answer.
    expectWithinLoadBound(pausedMs, 10_000);
    expect(decided.status).toBe(200);
    expect(decidedState).not.toBeNull();
    expect(finalState).toBe(decidedState);
    expectWithinLoadBound(decideMs, 3 * LLM_TIMEOUT_MS);
    // LLM work failed visibly: every call retried the provider and fell back to the rules, with its reason.
    for (const g of generated) {
      expect(g.status).toBe(201);
      expect(g.body.fallbackReason).toMatch(/^(rate_limited|timeout|provider_error)$/);
      expect(g.body.source).toBe("rules");
    }
    expect(hypothesisCalls.length).toBe(HYPOTHESIS_CALLS);
    expect(learningId).not.toBeNull();
    expect(summary?.returnvalue).toEqual({ status: "kept" });
    expect(summaryCalls.length).toBe(1);
    expect(summaryCalls[0]!.actor_id).toBe("worker");
    expect(fellBack.length).toBe(calls.length);
    expect(calls.every((c) => c.source === "rules")).toBe(true);
    // Retries: more provider requests than calls (each call tried the provider up to 1 + 2 retries).
    expect(llmRequests).toBeGreaterThan(calls.length);
    // Ingest kept its rate (within scheduling noise on a shared machine) and caught up.
    expect(during).toBeGreaterThan(0);
    expect(outageRate).toBeGreaterThanOrEqual(0.5 * baselineRate);
  });

  it("static: the kill-switch, analysis, poll and gate-decision modules load nothing of the LLM", () => {
    const runtime = join(ROOT, "packages/runtime/src");
    const roots = [
      ...readdirSync(join(runtime, "signals"))
        .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
        .map((f) => join(runtime, "signals", f)),
      join(runtime, "decide-gate.ts"),
    ];
    // The LLM package's main entry (the gateway and its providers) and the SDKs. Its `offline` entry, the pure
    // rules (the learning's rules sentence written with a decision), is allowed as long as it loads no
    // provider: the visit follows it and every module it loads.
    const forbidden = /^(@outcome-runtime\/llm$|@anthropic-ai\/|openai$|openai\/)/;
    const offenders: string[] = [];
    const sdkReached: string[] = [];
    const sdk = /^(@anthropic-ai\/|openai$|openai\/)/;
    const llmDir = join(ROOT, "packages/llm/src");
    const seen = new Set<string>();
    const visit = (file: string, via: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, "utf8");
      // Value imports and re-exports only: `import type` is erased at compile time and loads nothing.
      const specifiers = [
        ...source.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']/gm),
      ].map((m) => m[1]!);
      for (const spec of specifiers) {
        if (sdk.test(spec)) sdkReached.push(`${via} → ${file.slice(ROOT.length)} imports ${spec}`);
        if (forbidden.test(spec) && !file.startsWith(llmDir)) {
          offenders.push(`${via} → ${file.slice(ROOT.length)} imports ${spec}`);
        }
        // Follow an LLM entry point too, to see whether a provider SDK would be loaded with it.
        const entry = /^@outcome-runtime\/llm(\/offline)?$/.exec(spec);
        if (entry !== null) visit(join(llmDir, entry[1] === undefined ? "index.ts" : "offline.ts"), via);
        if (spec.startsWith(".")) {
          const target = resolve(dirname(file), spec.replace(/\.js$/, ""));
          const candidates = [`${target}.ts`, join(target, "index.ts")];
          const found = candidates.find((c) => existsSync(c));
          if (found !== undefined) visit(found, via);
        }
      }
    };
    for (const file of roots) visit(file, file.slice(ROOT.length));
    console.log(
      `[R17] static check: ${roots.length} modules, ${seen.size} loaded with them; imports of the LLM package: ${JSON.stringify(offenders)}; provider SDKs reached: ${JSON.stringify(sdkReached)}`,
    );
    const providersLoaded = [...seen].filter((f) => /packages\/llm\/src\/(providers|gateway)/.test(f));
    expect(providersLoaded).toEqual([]);
    expect(sdkReached).toEqual([]);
    expect(roots.length).toBeGreaterThan(5);
    expect(offenders).toEqual([]);
  });
});
