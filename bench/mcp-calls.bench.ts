/**
 * MCP tool calls as an agent makes them: the SDK's `Client` over Streamable
 * HTTP to the API's `/mcp` (a process of its own, on the demo's data), one
 * call at a time, each timed from the call to its result. The read tools are
 * called `calls` times each; `claim_experiment` then `report_experiment_built`
 * once on each of `writes` experiments approved for the purpose beforehand
 * (through the use cases: proposed by the PM, the portfolio gate approved).
 */
import { connectHttp } from "@outcome-runtime/mcp/test-support";
import { decideGate, proposeExperiment } from "@outcome-runtime/runtime";
import type { ApiProcess } from "./api-process";
import type { DemoWorld } from "./demo-world";

export interface ToolFigure {
  readonly tool: string;
  readonly calls: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  /** Calls answered with `isError` (a refusal): a run with any is reported, not trusted. */
  readonly errors: number;
}

/** The q-quantile (0–1) of sorted values, nearest rank. */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

function figure(tool: string, ms: number[], errors: number): ToolFigure {
  const sorted = [...ms].sort((a, b) => a - b);
  return {
    tool,
    calls: ms.length,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    meanMs: ms.reduce((a, b) => a + b, 0) / Math.max(1, ms.length),
    errors,
  };
}

/** Approve `n` fresh experiments of the world's outcome for the claim and report calls; returns their ids. */
export async function approveExperiments(world: DemoWorld, n: number): Promise<string[]> {
  const pm = world.pm;
  const deps = { db: world.db };
  const ids: string[] = [];
  let portfolio = "";
  for (let i = 0; i < n; i++) {
    const proposed = await proposeExperiment(deps, pm, world.outcomeId, {
      key: `bench-mcp-${i}`,
      title: `Benchmark experiment ${i}`,
      statement: `A change to be claimed and reported built by the MCP benchmark (${i}).`,
      arms: [
        { name: "control", weight: 0.5 },
        { name: "treatment", weight: 0.5 },
      ],
      touchedPaths: [`apps/web/src/bench/${i}/**`],
    });
    ids.push(proposed.experiment.id);
    portfolio = proposed.gate.id;
  }
  if (n > 0) await decideGate(deps, pm, portfolio, { decision: "approve", reason: "benchmark" });
  return ids;
}

/**
 * Time the tools through a client connected with `agentKey`: each read tool
 * `calls` times (after `warmup` untimed calls), then claim and report on each
 * of `approved`.
 */
export async function benchMcpCalls(
  api: ApiProcess,
  agentKey: string,
  world: DemoWorld,
  approved: readonly string[],
  options: { calls: number; warmup: number; progress?: (text: string) => void },
): Promise<ToolFigure[]> {
  const client = await connectHttp(`${api.base}/mcp`, agentKey);
  const experimentId = world.experimentIds[0] as string;
  const reads: { tool: string; args: Record<string, unknown> }[] = [
    { tool: "get_active_outcomes", args: {} },
    { tool: "get_experiment_status", args: { experiment_id: experimentId } },
    { tool: "get_experiment_brief", args: { experiment_id: experimentId } },
    { tool: "get_gate_status", args: { gate_id: world.launchGateId } },
    { tool: "query_learnings", args: { query: "checkout conversion metric" } },
  ];
  const figures: ToolFigure[] = [];
  const timed = async (name: string, args: Record<string, unknown>) => {
    const start = performance.now();
    const result = await client.callTool({ name, arguments: args });
    return { ms: performance.now() - start, error: result.isError === true };
  };
  try {
    for (const read of reads) {
      for (let i = 0; i < options.warmup; i++) await timed(read.tool, read.args);
      const ms: number[] = [];
      let errors = 0;
      for (let i = 0; i < options.calls; i++) {
        const r = await timed(read.tool, read.args);
        ms.push(r.ms);
        if (r.error) errors++;
      }
      figures.push(figure(read.tool, ms, errors));
      const f = figures.at(-1);
      options.progress?.(`   ${read.tool}: p50 ${f?.p50Ms.toFixed(1)} ms, p99 ${f?.p99Ms.toFixed(1)} ms`);
    }
    const claims: number[] = [];
    const reports: number[] = [];
    let claimErrors = 0;
    let reportErrors = 0;
    for (const [i, id] of approved.entries()) {
      const claim = await timed("claim_experiment", { experiment_id: id });
      claims.push(claim.ms);
      if (claim.error) claimErrors++;
      const report = await timed("report_experiment_built", {
        experiment_id: id,
        summary: `Built benchmark experiment ${i} behind its flag`,
        changed_paths: [`apps/web/src/bench/${i}/variant.tsx`],
        pull_request_url: `https://git.example/pr/${i}`,
        flag_key: `bench-mcp-${i}`,
      });
      reports.push(report.ms);
      if (report.error) reportErrors++;
    }
    figures.push(figure("claim_experiment", claims, claimErrors));
    figures.push(figure("report_experiment_built", reports, reportErrors));
    for (const f of figures.slice(-2)) {
      options.progress?.(`   ${f.tool}: p50 ${f.p50Ms.toFixed(1)} ms, p99 ${f.p99Ms.toFixed(1)} ms`);
    }
  } finally {
    await client.close();
  }
  return figures;
}
