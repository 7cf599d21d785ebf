/** Filling a template's `{{placeholders}}` from an outcome. */
import type { Placeholder } from "./playbook";
import type { RulesOutcome } from "./types";

/** A fraction as a percentage: 0.05 → "5%", 0.035 → "3.5%". */
export function formatPercent(fraction: number): string {
  return `${Number((fraction * 100).toFixed(2))}%`;
}

function plural(unit: string): string {
  const word = unit.replaceAll("_", " ");
  if (word.endsWith("s")) return word;
  if (/[^aeiou]y$/.test(word)) return `${word.slice(0, -1)}ies`;
  return `${word}s`;
}

function level(outcome: RulesOutcome, value: number): string {
  return outcome.signal.kind === "proportion" ? formatPercent(value) : String(value);
}

/** The value of each placeholder for one outcome and template (see `playbooks/README.md`). */
export function placeholderValues(
  outcome: RulesOutcome,
  template: { id: string; expected_effect: number },
): Record<Placeholder, string> {
  const { target, signal } = outcome;
  return {
    metric: signal.metric,
    unit: signal.unit.replaceAll("_", " "),
    units: plural(signal.unit),
    direction: target.direction,
    effect: formatPercent(template.expected_effect),
    outcome: outcome.name,
    target: target.relative
      ? `a ${formatPercent(target.value)} relative ${target.direction}`
      : `a level of ${level(outcome, target.value)}`,
    baseline: signal.baseline === undefined ? "the current level" : level(outcome, signal.baseline),
    flag: `${outcome.id}--${template.id}`,
  };
}

/** Replaces every `{{name}}` in `text`; unknown names are left as written (the loader rejects them). */
export function fill(text: string, values: Readonly<Record<string, string>>): string {
  return text.replace(/\{\{\s*([a-z_]+)\s*\}\}/g, (whole, name: string) => values[name] ?? whole);
}
