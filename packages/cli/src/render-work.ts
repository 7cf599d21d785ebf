/**
 * Plain-text rendering of experiments and gates for people at a terminal.
 * Colours come in as a parameter: identity functions when they are off.
 */
import { type AnalysisSummary, assertNever, type GateContextPackage } from "@outcome-runtime/core";
import type {
  AnalysisJson,
  DecisionResultJson,
  ExperimentDetailJson,
  ExperimentJson,
  GateDetailJson,
  GateJson,
} from "./api-types";
import type { Colors } from "./output";

/** A number to four significant digits, without trailing zeros. */
function num(x: number): string {
  return String(Number(x.toPrecision(4)));
}

/** A fraction as a signed percentage, e.g. 0.052 → "+5.2%". */
function signedPct(fraction: number): string {
  const value = Number((fraction * 100).toPrecision(3));
  return `${value > 0 ? "+" : ""}${value}%`;
}

/** A fraction as a percentage, e.g. 0.5 → "50%". */
function pct(fraction: number): string {
  return `${Number((fraction * 100).toPrecision(4))}%`;
}

function pValue(p: number): string {
  return p < 0.0001 ? "< 0.0001" : String(Number(p.toPrecision(2)));
}

/** An ISO time as "2026-12-01 16:20 UTC". */
function when(iso: string): string {
  return `${iso.slice(0, 16).replace("T", " ")} UTC`;
}

const GOOD = new Set(["approved", "running", "shipped", "built", "active", "achieved"]);
const BAD = new Set(["rejected", "rolled_back", "expired", "paused", "missed", "abandoned"]);
const WAITING = new Set(["pending", "proposed", "analysing", "building"]);

/** A state in brackets, coloured by what it means. */
function badge(state: string, c: Colors): string {
  const text = `[${state}]`;
  if (GOOD.has(state)) return c.green(text);
  if (BAD.has(state)) return c.red(text);
  if (WAITING.has(state)) return c.yellow(text);
  return c.dim(text);
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + " ".repeat(width - text.length);
}

function arms(list: readonly { name: string; weight: number }[]): string {
  return list.map((a) => `${a.name} ${pct(a.weight)}`).join(", ");
}

function prediction(p: ExperimentJson["prediction"]): string {
  if (p === null) return "none";
  return `${p.direction} by ${p.relative ? pct(p.effect) : num(p.effect)}${p.relative ? " (relative)" : ""}`;
}

/** Experiments grouped by outcome: one line each, key, state and title. */
function experimentList(groups: { outcome: string; items: ExperimentJson[] }[], c: Colors, state?: string): string {
  const shown = groups.filter((g) => g.items.length > 0);
  if (shown.length === 0) {
    return state === undefined
      ? "No experiments yet. An active outcome proposes its first hypotheses: outcome-runtime activate <outcome>"
      : `No experiments in state ${state}.`;
  }
  const keyWidth = Math.max(...shown.flatMap((g) => g.items.map((e) => e.key.length)));
  const stateWidth = Math.max(...shown.flatMap((g) => g.items.map((e) => e.state.length + 2)));
  return shown
    .map((g) =>
      [
        c.bold(g.outcome),
        ...g.items.map(
          (e) =>
            `  ${pad(e.key, keyWidth)}  ${badge(e.state, c)}${pad("", stateWidth - e.state.length - 2)}  ${e.title}`,
        ),
      ].join("\n"),
    )
    .join("\n\n");
}

function analysisLines(a: AnalysisJson, alpha: number | null): string[] {
  const level = alpha === null ? "" : `${pct(1 - alpha)} `;
  const lines = [`  latest analysis (data up to ${when(a.ts)}):`];
  if (a.effect !== null) {
    const relative = a.relativeLift === null ? "" : ` (${signedPct(a.relativeLift)} relative to control)`;
    lines.push(`    effect: ${num(a.effect)}${relative}`);
  } else {
    lines.push("    effect: not estimable yet");
  }
  if (a.ci !== null) lines.push(`    ${level}always-valid interval: [${num(a.ci[0])}, ${num(a.ci[1])}]`);
  if (a.pValue !== null) lines.push(`    always-valid p-value: ${pValue(a.pValue)}`);
  if (a.srmPValue !== null) lines.push(`    sample ratio mismatch p-value: ${pValue(a.srmPValue)}`);
  const perArm = Object.entries(a.arms).map(
    ([name, s]) => `${name} ${s.units ?? 0} units${typeof s.mean === "number" ? `, mean ${num(s.mean)}` : ""}`,
  );
  if (perArm.length > 0) lines.push(`    arms: ${perArm.join("; ")}`);
  lines.push(
    `    decision: ${a.decision.action} (${a.decision.reason})${a.decision.detail ? `: ${a.decision.detail}` : ""}`,
  );
  return lines;
}

function gateLine(g: GateJson, c: Colors): string {
  const decided = g.decision
    ? ` ${g.decision.decision} by ${g.decision.decidedBy} via ${g.decision.channel} at ${when(g.decision.decidedAt)}`
    : ` due ${when(g.dueAt)}, assignees ${g.assignees.join(", ") || "none"}`;
  return `${g.kind} ${badge(g.status, c)}${decided}  ${c.dim(g.id)}`;
}

function experimentDetail(d: ExperimentDetailJson, c: Colors): string {
  const e = d.experiment;
  const lines = [
    `${c.bold(e.key)}  ${badge(e.state, c)}  ${e.title}`,
    `  id: ${e.id}`,
    `  hypothesis: ${e.statement}`,
    ...(e.mechanism ? [`  mechanism: ${e.mechanism}`] : []),
    `  prediction: ${prediction(e.prediction)}`,
    `  arms: ${arms(e.arms)}`,
    `  source: ${e.source}${e.claimedBy ? `; claimed by ${e.claimedBy}` : ""}`,
  ];
  if (e.build) {
    lines.push(`  build: ${e.build.summary}`);
    if (e.build.pullRequestUrl) lines.push(`    pull request: ${e.build.pullRequestUrl}`);
    if (e.build.flagKey) lines.push(`    flag: ${e.build.flagKey}`);
    if (e.build.changedPaths.length > 0) lines.push(`    changed: ${e.build.changedPaths.join(", ")}`);
    lines.push(`    reported by ${e.build.reportedBy} at ${when(e.build.reportedAt)}`);
  }
  if (e.launchedAt) lines.push(`  launched: ${when(e.launchedAt)}`);
  if (e.polling.error) lines.push(c.red(`  last poll failed: ${e.polling.error.code}: ${e.polling.error.message}`));
  if (d.latestAnalysis) lines.push(...analysisLines(d.latestAnalysis, e.statsPlan?.alpha ?? null));
  else if (e.launchedAt) lines.push("  latest analysis: none yet");
  lines.push(`  gates:${d.gates.length === 0 ? " none" : ""}`);
  for (const g of d.gates) lines.push(`    - ${gateLine(g, c)}`);
  return lines.join("\n");
}

function gateList(items: GateJson[], c: Colors, inbox: boolean): string {
  if (items.length === 0) return inbox ? "Your inbox is empty: no pending gate waits for you." : "No gates.";
  const kindWidth = Math.max(...items.map((g) => g.kind.length));
  return [
    ...items.map((g) => {
      const why = g.context.reason ? ` (${g.context.reason})` : "";
      const tail = g.decision
        ? `${g.decision.decision} by ${g.decision.decidedBy}`
        : `due ${when(g.dueAt)}, ${g.assignees.join(", ") || "no assignees"}`;
      return `${g.id}  ${pad(g.kind, kindWidth)}  ${badge(g.status, c)}  ${tail}${why}`;
    }),
    "",
    c.dim("Show one with: outcome-runtime gates show <id>"),
  ].join("\n");
}

function analysisSummaryLines(a: AnalysisSummary): string[] {
  const lines = [`  analysis (data up to ${when(a.ts)}, ${a.metric}):`];
  if (a.effect !== null) {
    const rel = a.relativeLift === null ? "" : ` (${signedPct(a.relativeLift)} relative)`;
    lines.push(`    effect: ${num(a.effect)}${rel}`);
  }
  if (a.ciLow !== null && a.ciHigh !== null) {
    lines.push(`    ${pct(1 - a.alpha)} always-valid interval: [${num(a.ciLow)}, ${num(a.ciHigh)}]`);
  }
  if (a.pValue !== null) lines.push(`    always-valid p-value: ${pValue(a.pValue)}`);
  if (a.srm.pValue !== null) {
    lines.push(`    sample ratio mismatch p-value: ${pValue(a.srm.pValue)}${a.srm.alarm ? " (ALARM)" : ""}`);
  }
  lines.push(
    `    arms: ${a.arms.map((arm) => `${arm.name} ${arm.units} units${arm.mean === null ? "" : `, mean ${num(arm.mean)}`}`).join("; ")}`,
  );
  for (const g of a.guardrails) {
    lines.push(`    guardrail ${g.metric} (${g.arm}): ${g.verdict}${g.harm === null ? "" : `, harm ${num(g.harm)}`}`);
  }
  return lines;
}

function contextLines(p: GateContextPackage, c: Colors): string[] {
  const lines = [`  outcome: ${p.outcome.slug} (${p.outcome.target})`];
  switch (p.kind) {
    case "portfolio_review":
      lines.push("  hypotheses:");
      for (const h of p.hypotheses) {
        const effect = h.prediction
          ? `, ${h.prediction.direction} ${h.prediction.relative ? pct(h.prediction.effect) : num(h.prediction.effect)}`
          : "";
        lines.push(
          `    - ${h.key} ${badge(h.state, c)} ${h.title}${effect}; effort ${h.effort ?? "?"}, risk ${h.risk ?? "?"}`,
        );
        lines.push(`      ${c.dim(h.id)}`);
      }
      break;
    case "launch_approval":
      lines.push(`  experiment: ${p.experiment.key} ${badge(p.experiment.state, c)} ${p.experiment.title}`);
      lines.push(`  arms: ${arms(p.arms)}`);
      if (p.build) {
        lines.push(`  build: ${p.build.summary}`);
        if (p.build.pullRequestUrl) lines.push(`    pull request: ${p.build.pullRequestUrl}`);
        if (p.build.flagKey) lines.push(`    flag: ${p.build.flagKey}`);
        if (p.build.changedPaths.length > 0) lines.push(`    changed: ${p.build.changedPaths.join(", ")}`);
        lines.push(`    reported by ${p.build.reportedBy}`);
      }
      break;
    case "analysis_review":
      lines.push(`  experiment: ${p.experiment.key} ${badge(p.experiment.state, c)} ${p.experiment.title}`);
      lines.push(
        `  trigger: ${p.trigger.action} (${p.trigger.reason})${p.trigger.detail ? `: ${p.trigger.detail}` : ""}`,
      );
      if (p.analysis) lines.push(...analysisSummaryLines(p.analysis));
      lines.push(`  chart: ${p.chartUrl}`);
      break;
    case "agent_request":
      lines.push(`  experiment: ${p.experiment.key} ${badge(p.experiment.state, c)} ${p.experiment.title}`);
      lines.push(`  question from ${p.askedBy}: ${p.question}`);
      break;
    case "achievement_review": {
      const e = p.evidence;
      if (e) {
        const side = e.direction === "increase" ? "lower" : "upper";
        lines.push(
          `  target held: latest ${e.latest}, mean ${e.mean} of ${e.points} points from ${e.windowStart} to ${e.windowEnd}`,
        );
        lines.push(`  ${side} ${e.confidence * 100}% bound ${e.bound} is past the goal ${e.goal}`);
      }
      lines.push(`  series: ${p.series.length} points since activation; chart: ${p.chartUrl}`);
      lines.push(`  shipped since activation: ${p.shipped.length === 0 ? "none" : ""}`);
      for (const s of p.shipped) {
        const lift = s.relativeLift === null ? "" : ` (${(s.relativeLift * 100).toFixed(1)}%)`;
        lines.push(`    - ${s.key} ${s.title}${lift}, shipped ${s.shippedAt}`);
      }
      break;
    }
    default:
      assertNever(p);
  }
  return lines;
}

/** The command that makes a decision, as a person would type it. */
function decisionCommand(gateId: string, decision: string): string {
  return decision === "approve" || decision === "reject"
    ? `outcome-runtime gates ${decision} ${gateId}`
    : `outcome-runtime gates decide ${gateId} ${decision}`;
}

function gateDetail(d: GateDetailJson, c: Colors): string {
  const g = d.gate;
  const lines = [`${c.bold(g.kind)} ${badge(g.status, c)}  ${g.id}`];
  lines.push(
    `  assignees: ${g.assignees.join(", ") || "none"}${g.backup ? `; backup ${g.backup}` : ""}${g.escalatedTo ? `; escalated to ${g.escalatedTo}` : ""}`,
  );
  lines.push(`  opened ${when(g.createdAt)}, due ${when(g.dueAt)}`);
  // An analysis review says why as its trigger, below.
  if (g.context.reason && d.contextPackage.kind !== "analysis_review") {
    lines.push(`  why: ${g.context.reason}${g.context.detail ? `: ${g.context.detail}` : ""}`);
  }
  lines.push(...contextLines(d.contextPackage, c));
  if (g.decision) {
    lines.push(
      `  decided: ${g.decision.decision} by ${g.decision.decidedBy} via ${g.decision.channel} at ${when(g.decision.decidedAt)}${g.decision.reason ? ` ("${g.decision.reason}")` : ""}`,
    );
  }
  if (d.options.length > 0) {
    lines.push("", "Decide with:");
    const width = Math.max(...d.options.map((o) => decisionCommand(g.id, o.decision).length));
    for (const o of d.options) {
      lines.push(
        `  ${pad(decisionCommand(g.id, o.decision), width)} [--reason "…"]  ${c.dim(`${o.label}: ${o.effect}`)}`,
      );
    }
  }
  return lines.join("\n");
}

function decisionResult(r: DecisionResultJson, c: Colors): string {
  const g = r.gate;
  const lines = [
    `${g.kind} ${g.id}: ${badge(g.status, c)} (${g.decision?.decision ?? g.status} by ${g.decision?.decidedBy ?? "?"})`,
    ...r.experiments.map((e) => `  ${e.key}: ${badge(e.state, c)} ${e.title}`),
  ];
  if (r.learningId) lines.push(`  learning written: ${r.learningId}`);
  return lines.join("\n");
}

export const renderExperiments = { list: experimentList, detail: experimentDetail };
export const renderGates = { list: gateList, detail: gateDetail, decision: decisionResult };
