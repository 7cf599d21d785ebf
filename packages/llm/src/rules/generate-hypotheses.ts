/**
 * The offline hypothesis engine: picks a portfolio of playbook templates for
 * an outcome, deterministically, and fills them in.
 */
import { type AreaJudgement, detectArea } from "./area";
import { defaultPlaybooks, type PlaybookTemplate } from "./playbook";
import { fill, placeholderValues } from "./render";
import { RulesError } from "./rules-error";
import { forbiddenHits, placePaths } from "./scope-paths";
import { findSimilarFailure } from "./similarity";
import type {
  Effort,
  GeneratedHypothesis,
  GenerateHypothesesOutput,
  RulesHypothesesInput,
  RulesLearning,
} from "./types";

/** Decisions that count a learning's mechanism as having worked. */
const POSITIVE_DECISIONS: readonly string[] = ["shipped", "ship", "won", "win", "adopted"];
/** Decisions that count a learning's mechanism as having not worked (elsewhere). */
const NEGATIVE_DECISIONS: readonly string[] = ["rolled_back", "rollback", "lost", "loss", "killed", "failed"];

/** Score weights; see {@link planByRules}. */
const SCORE_WEIGHTS = {
  primaryArea: 10,
  alsoArea: 6,
  positiveLearning: 3,
  negativeLearning: -3,
  maxLearningBoost: 6,
  outOfScope: -4,
  priority: 100,
} as const;

const EFFORT_COST: Record<Effort, number> = { S: 1, M: 2, L: 3, XL: 5 };

/** Why a template that would have been picked was left out. */
type RulesDropReason = "forbidden_paths" | "failed_before" | "excluded_mechanism";

export interface RulesDrop {
  template: string;
  title: string;
  mechanism_key: string;
  reason: RulesDropReason;
  /** The forbidden paths hit, the failed hypothesis matched, or the excluded key. */
  detail: string;
  paths?: string[];
}

interface ScoredTemplate {
  template: PlaybookTemplate;
  score: number;
  positive: RulesLearning[];
  negative: RulesLearning[];
}

/** The result of {@link planByRules}. */
export interface RulesPlan extends GenerateHypothesesOutput {
  /** Templates that ranked high enough to be picked but were replaced, in rank order. */
  dropped: RulesDrop[];
  area: AreaJudgement;
}

export interface RulesOptions {
  /** The template library (default: `playbooks/` of the repository). */
  playbooks?: readonly PlaybookTemplate[];
}

function learningMechanism(learning: RulesLearning, keys: ReadonlySet<string>): string | undefined {
  if (learning.mechanism_key !== undefined) return learning.mechanism_key;
  return [...(learning.tags ?? [])].sort().find((t) => keys.has(t));
}

function learningSign(learning: RulesLearning): 1 | -1 | 0 {
  const decision = learning.decision.toLowerCase();
  if (NEGATIVE_DECISIONS.includes(decision)) return -1;
  if (POSITIVE_DECISIONS.includes(decision)) return 1;
  if (typeof learning.effect === "number" && learning.effect > 0 && decision !== "iterated") return 1;
  return 0;
}

function round(n: number, digits: number): number {
  return Number(n.toFixed(digits));
}

/**
 * Plans a portfolio from the playbooks, and reports what it left out.
 *
 * 1. Area: {@link detectArea} over the outcome's words.
 * 2. Candidates: templates whose `kinds` include the signal's kind.
 * 3. Score = 10 if the template's playbook is the area (6 if the area is in its
 *    `also_areas`) + 3 per past learning of the same mechanism that shipped or
 *    won, − 3 per one rolled back or lost (together capped at ±6) − 4 when none
 *    of its paths fits `allowed_paths` + 100 × expected effect × confidence ÷
 *    effort cost (S 1, M 2, L 3, XL 5). Ties go to the template id, so the
 *    result depends on the input only.
 * 4. Walk the ranking and take a template unless its mechanism is already in
 *    the portfolio or its mechanism is excluded (`excluded_mechanism`), it
 *    repeats a failed hypothesis of this outcome (`failed_before`, see
 *    {@link findSimilarFailure}), or any of its placed paths falls under
 *    `forbidden_paths` (`forbidden_paths`). Left-out templates that would
 *    otherwise have been taken are listed in `dropped`.
 *
 * @throws RulesError `no_hypotheses_available` when no template is left.
 */
export function planByRules(input: RulesHypothesesInput, options: RulesOptions = {}): RulesPlan {
  const { outcome } = input;
  const library = options.playbooks ?? defaultPlaybooks();
  const count = Math.min(10, Math.max(1, Math.floor(input.count ?? 3)));
  const learnings = input.learnings ?? [];
  const failed = input.failed ?? [];
  const excluded = new Set(input.exclude_mechanisms ?? []);
  const area = detectArea(outcome);
  const keys = new Set(library.map((t) => t.mechanism_key));

  const scored: (ScoredTemplate & { placed: ReturnType<typeof placePaths> })[] = [];
  for (const template of library) {
    if (!template.kinds.includes(outcome.signal.kind)) continue;
    let score = 0;
    if (area.area !== null && template.area === area.area) score += SCORE_WEIGHTS.primaryArea;
    else if (area.area !== null && template.also_areas.includes(area.area)) score += SCORE_WEIGHTS.alsoArea;
    const related = learnings.filter((l) => learningMechanism(l, keys) === template.mechanism_key);
    const positive = related.filter((l) => learningSign(l) > 0);
    const negative = related.filter((l) => learningSign(l) < 0);
    const boost = positive.length * SCORE_WEIGHTS.positiveLearning + negative.length * SCORE_WEIGHTS.negativeLearning;
    score += Math.max(-SCORE_WEIGHTS.maxLearningBoost, Math.min(SCORE_WEIGHTS.maxLearningBoost, boost));
    const placed = placePaths(template.touched_paths, outcome.allowed_paths);
    if (!placed.inScope) score += SCORE_WEIGHTS.outOfScope;
    score += (SCORE_WEIGHTS.priority * template.expected_effect * template.confidence) / EFFORT_COST[template.effort];
    scored.push({ template, score: round(score, 6), positive, negative, placed });
  }
  scored.sort((a, b) => b.score - a.score || (a.template.id < b.template.id ? -1 : 1));

  const hypotheses: GeneratedHypothesis[] = [];
  const dropped: RulesDrop[] = [];
  const taken = new Set<string>();
  for (const entry of scored) {
    if (hypotheses.length >= count) break;
    const { template, placed } = entry;
    if (taken.has(template.mechanism_key)) continue;
    const values = placeholderValues(outcome, template);
    const title = fill(template.title, values);
    const statement = fill(template.statement, values);
    const base = { template: template.id, title, mechanism_key: template.mechanism_key };
    if (excluded.has(template.mechanism_key)) {
      dropped.push({ ...base, reason: "excluded_mechanism", detail: `mechanism ${template.mechanism_key} excluded` });
      continue;
    }
    const repeat = findSimilarFailure({ title, statement, mechanism_key: template.mechanism_key }, failed);
    if (repeat !== undefined) {
      dropped.push({
        ...base,
        reason: "failed_before",
        detail: `repeats failed hypothesis "${repeat.failed.title}" (${repeat.why})`,
      });
      continue;
    }
    const hits = forbiddenHits(placed.paths, outcome.forbidden_paths);
    if (hits.length > 0) {
      dropped.push({ ...base, reason: "forbidden_paths", detail: `touches ${hits.join(", ")}`, paths: hits });
      continue;
    }
    taken.add(template.mechanism_key);
    hypotheses.push(toHypothesis(entry, placed, area, outcome.signal.kind, values, title, statement));
  }
  if (hypotheses.length === 0) {
    throw new RulesError(
      "no_hypotheses_available",
      `no playbook template fits outcome ${outcome.id} (kind ${outcome.signal.kind}) once excluded mechanisms, failed hypotheses and forbidden paths are left out`,
      { outcome: outcome.id, dropped },
    );
  }
  return { hypotheses, dropped, area };
}

function toHypothesis(
  entry: ScoredTemplate,
  placed: ReturnType<typeof placePaths>,
  area: AreaJudgement,
  kind: string,
  values: Record<string, string>,
  title: string,
  statement: string,
): GeneratedHypothesis {
  const { template, positive, negative } = entry;
  const used = [...positive, ...negative].map((l) => l.id).sort();
  const confidence = Math.min(
    0.9,
    Math.max(0.1, template.confidence + 0.05 * positive.length - 0.05 * negative.length),
  );
  const areaText =
    area.area === null
      ? "no area keyword matched, so templates were ranked on metric kind and priority only"
      : template.area === area.area || template.also_areas.includes(area.area)
        ? `area ${area.area} (matched: ${area.matched.join(", ")})`
        : `area ${area.area} (matched: ${area.matched.join(", ")}); this template comes from the ${template.area} playbook to keep the mechanisms distinct`;
  const learningText =
    used.length === 0
      ? "no past learning on this mechanism"
      : [
          ...positive.map((l) => `learning ${l.id} (${l.decision}) supports ${template.mechanism_key}`),
          ...negative.map((l) => `learning ${l.id} (${l.decision}) counts against ${template.mechanism_key}`),
        ].join("; ");
  const scopeText = placed.inScope
    ? ""
    : " Its usual paths are outside allowed_paths, so the allowed globs are listed.";
  const rationale =
    `source: rules. Template ${template.id} (${template.source}), mechanism ${template.mechanism_key}, ` +
    `for the ${kind} metric ${values.metric}; ${areaText}; ` +
    `${learningText}; score ${round(entry.score, 2)}.${scopeText}`;
  const hypothesis: GeneratedHypothesis = {
    title,
    statement,
    mechanism: fill(template.mechanism, values),
    mechanism_key: template.mechanism_key,
    prediction: {
      metric: values.metric ?? "",
      direction: values.direction === "decrease" ? "decrease" : "increase",
      effect: template.expected_effect,
      relative: true,
    },
    measurement_plan: fill(template.measurement_plan, values),
    rollout_plan: fill(template.rollout_plan, values),
    effort: template.effort,
    risk: template.risk,
    confidence: round(confidence, 2),
    touched_paths: placed.paths.slice(0, 50),
    rationale: rationale.slice(0, 2000),
  };
  if (used.length > 0) hypothesis.learnings_used = used.slice(0, 20);
  return hypothesis;
}

/**
 * Proposes `count` (default 3) hypotheses for an outcome from the playbooks,
 * each with a different `mechanism_key`, in the shape of
 * `schemas/llm/generate_hypotheses.output.schema.json`. Deterministic: the
 * same input gives the same output. See {@link planByRules} for how templates
 * are ranked and what is left out.
 *
 * @throws RulesError `no_hypotheses_available` when no template is left.
 */
export function generateHypothesesByRules(
  input: RulesHypothesesInput,
  options: RulesOptions = {},
): GenerateHypothesesOutput {
  return { hypotheses: planByRules(input, options).hypotheses };
}
