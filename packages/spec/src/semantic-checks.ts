/**
 * Checks JSON Schema cannot express, run on the normalised outcome
 * (fractions and seconds) after the schema pass. Each check only looks at
 * parts that passed the schema, so one mistake is never reported twice.
 */
import { didYouMean } from "./did-you-mean.js";
import { metricPointers, valueAt } from "./metric-pointers.js";
import { isPlainObject } from "./normalize-outcome.js";
import { type Finding, formatPercent } from "./schema-diagnostics.js";
import { humanPath } from "./source-positions.js";

/** Tolerance for "the weights add up to 1": float sums of decimal fractions are not exact. */
const WEIGHT_TOLERANCE = 1e-9;

/** Inputs of {@link semanticFindings}. */
export interface SemanticContext {
  /** Connector types this runtime knows. */
  connectors: readonly string[];
  /** Whether the value at a pointer passed the schema and unit parsing. */
  isClean: (pointer: string) => boolean;
}

/**
 * Runs the semantic checks on a normalised outcome.
 *
 * - the outcome `id` does not look like a row id (a UUID), since the API
 *   takes either in its paths (`invalid_value`);
 * - connector types are ones this runtime knows (`unknown_connector`);
 * - a `mean` metric read from Mixpanel names its `value_property`
 *   (`missing_field`): without it Mixpanel can only count users;
 * - a `ratio` metric is not read from Mixpanel (`invalid_connector`): its
 *   segmentation API gives no per-unit products of numerator and denominator;
 * - a `prometheus` connector reads a `proportion` (`invalid_connector`:
 *   Prometheus keeps counts, no Σx² per unit), and its latency read (the
 *   share of requests slower than a threshold, which stands for a quantile)
 *   is a guardrail or a secondary metric, never the outcome's signal
 *   (`invalid_connector` at `signal.connector.latency`);
 * - arm names are distinct (`duplicate_arm`) and the weights add up to 1
 *   within 1e-9 (`weights_not_one`);
 * - `expected_effect` and `mixture_variance` are not both set (`conflicting_options`);
 * - a relative target is a positive change (`out_of_range`); an absolute
 *   target lies on the side of the baseline its direction says
 *   (`target_direction_conflict`); proportions stay in [0, 1]
 *   (`out_of_range`, `target_unreachable`).
 */
export function semanticFindings(spec: unknown, context: SemanticContext): Finding[] {
  return [
    ...idFindings(spec, context),
    ...connectorFindings(spec, context),
    ...meanConnectorFindings(spec, context),
    ...ratioConnectorFindings(spec, context),
    ...prometheusConnectorFindings(spec, context),
    ...armFindings(spec, context),
    ...tuningFindings(spec, context),
    ...targetFindings(spec, context),
  ];
}

const UUID_SHAPED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function idFindings(spec: unknown, { isClean }: SemanticContext): Finding[] {
  const id = field(spec, "id");
  if (!isClean("/id") || typeof id !== "string" || !UUID_SHAPED.test(id)) return [];
  return [
    {
      code: "invalid_value",
      pointer: "/id",
      target: "value",
      message: `id: "${id}" looks like a generated id (a UUID); the API could not tell it from one`,
      hint: "name the outcome with words, such as checkout-abandonment",
    },
  ];
}

function connectorFindings(spec: unknown, { connectors, isClean }: SemanticContext): Finding[] {
  const pointers = metricPointers(spec).map((m) => `${m.pointer}/connector`);
  const findings: Finding[] = [];
  for (const pointer of pointers) {
    const type = field(valueAt(spec, pointer), "type");
    if (!isClean(pointer) || typeof type !== "string" || connectors.includes(type)) continue;
    const suggestion = didYouMean(type, connectors);
    findings.push({
      code: "unknown_connector",
      pointer: `${pointer}/type`,
      target: "value",
      message: `${humanPath(`${pointer}/type`)}: unknown connector type "${type}"`,
      hint: `${suggestion === undefined ? "" : `did you mean "${suggestion}"? `}known connectors: ${connectors.join(", ") || "(none)"}`,
    });
  }
  return findings;
}

/** The connector of every metric (signal, guardrails, secondary metrics), with the metric kind it reads. */
function metricConnectors(spec: unknown): { pointer: string; kindPointer: string }[] {
  return metricPointers(spec).map((m) => ({ pointer: `${m.pointer}/connector`, kindPointer: `${m.pointer}/kind` }));
}

function meanConnectorFindings(spec: unknown, { isClean }: SemanticContext): Finding[] {
  const findings: Finding[] = [];
  for (const { pointer, kindPointer } of metricConnectors(spec)) {
    if (!isClean(pointer) || !isClean(kindPointer) || valueAt(spec, kindPointer) !== "mean") continue;
    const connector = valueAt(spec, pointer);
    if (field(connector, "type") !== "mixpanel" || field(connector, "value_property") !== undefined) continue;
    findings.push({
      code: "missing_field",
      pointer,
      target: "key",
      message: `${humanPath(pointer)}: a mean metric read from Mixpanel needs value_property`,
      hint: "name the numeric property of the event that holds each unit's value (e.g. value_property: amount); without it Mixpanel can only count users",
    });
  }
  return findings;
}

function ratioConnectorFindings(spec: unknown, { isClean }: SemanticContext): Finding[] {
  const findings: Finding[] = [];
  for (const { pointer, kindPointer } of metricConnectors(spec)) {
    if (!isClean(pointer) || !isClean(kindPointer) || valueAt(spec, kindPointer) !== "ratio") continue;
    if (field(valueAt(spec, pointer), "type") !== "mixpanel") continue;
    findings.push({
      code: "invalid_connector",
      pointer: `${pointer}/type`,
      target: "value",
      message: `${humanPath(pointer)}: a ratio metric cannot be read from Mixpanel: its delta-method variance needs each unit's numerator and denominator (den_sum, den_sum_sq, num_den_sum), which Mixpanel's segmentation API does not give`,
      hint: "read the ratio with a postgres or csv connector, or measure the numerator per unit as a mean (kind: mean)",
    });
  }
  return findings;
}

function prometheusConnectorFindings(spec: unknown, { isClean }: SemanticContext): Finding[] {
  const findings: Finding[] = [];
  for (const { pointer, kindPointer } of metricConnectors(spec)) {
    if (!isClean(pointer) || field(valueAt(spec, pointer), "type") !== "prometheus") continue;
    const kind = valueAt(spec, kindPointer);
    if (isClean(kindPointer) && (kind === "mean" || kind === "ratio")) {
      findings.push({
        code: "invalid_connector",
        pointer: `${pointer}/type`,
        target: "value",
        message: `${humanPath(pointer)}: a ${kind} metric cannot be read from Prometheus: it keeps counts and histogram buckets, not each unit's value, so it gives no sum of squares for the variance`,
        hint: "read an error rate (requests, errors) or the share of requests slower than a latency threshold (latency, threshold) as kind: proportion",
      });
      continue;
    }
    if (pointer === "/signal/connector" && field(valueAt(spec, pointer), "latency") !== undefined) {
      findings.push({
        code: "invalid_connector",
        pointer: `${pointer}/latency`,
        target: "key",
        message: `${humanPath(`${pointer}/latency`)}: a latency quantile cannot be the outcome's signal: it is read as the share of requests slower than the threshold, a guardrail's test (p99 < threshold ⇔ fewer than 1% slower), not a metric to move`,
        hint: "use it as a guardrail (constraints.guardrails, kind: proportion, direction: decrease), and read the signal from the metric the outcome moves",
      });
    }
  }
  return findings;
}

function armFindings(spec: unknown, { isClean }: SemanticContext): Finding[] {
  const pointer = "/experiment_defaults/arms";
  const arms = valueAt(spec, pointer);
  if (!isClean(pointer) || !Array.isArray(arms)) return [];
  const findings: Finding[] = [];
  const seen = new Map<string, number>();
  arms.forEach((arm, i) => {
    const name = field(arm, "name");
    if (typeof name !== "string") return;
    const first = seen.get(name);
    if (first === undefined) {
      seen.set(name, i);
      return;
    }
    findings.push({
      code: "duplicate_arm",
      pointer: `${pointer}/${i}/name`,
      target: "value",
      message: `${humanPath(pointer)}: arm name "${name}" is used twice (arms ${first + 1} and ${i + 1})`,
      hint:
        name === "control"
          ? "exactly one arm is the control; rename the other, e.g. treatment"
          : "give every arm its own name",
    });
  });
  const weights = arms.map((arm) => field(arm, "weight"));
  if (weights.every((w): w is number => typeof w === "number")) {
    const sum = weights.reduce((a, b) => a + b, 0);
    if (Math.abs(sum - 1) > WEIGHT_TOLERANCE) {
      const even = 100 / arms.length;
      const evenText = Number.isInteger(even)
        ? `${even}%`
        : `${Number(even.toFixed(4))}% (give the remainder to one arm)`;
      findings.push({
        code: "weights_not_one",
        pointer,
        target: "container",
        message: `${humanPath(pointer)}: the weights add up to ${Number(sum.toPrecision(12))} (${formatPercent(sum)}), not 1 (100%)`,
        hint: `make them add up to 100%; for an even split of ${arms.length} arms, ${evenText} each`,
      });
    }
  }
  return findings;
}

function tuningFindings(spec: unknown, { isClean }: SemanticContext): Finding[] {
  const defaults = field(spec, "experiment_defaults");
  if (!isClean("/experiment_defaults/expected_effect") || !isClean("/experiment_defaults/mixture_variance")) return [];
  if (field(defaults, "expected_effect") === undefined || field(defaults, "mixture_variance") === undefined) return [];
  return [
    {
      code: "conflicting_options",
      pointer: "/experiment_defaults/mixture_variance",
      target: "key",
      message: "experiment_defaults: expected_effect and mixture_variance are both set; pick one",
      hint: "expected_effect (e.g. 3%) sets the mixture variance of the sequential test; mixture_variance sets it directly. Remove one of them.",
    },
  ];
}

function targetFindings(spec: unknown, { isClean }: SemanticContext): Finding[] {
  if (!isClean("/target")) return [];
  const target = field(spec, "target");
  const value = field(target, "value");
  const direction = field(target, "direction");
  const relative = field(target, "relative");
  if (typeof value !== "number" || typeof relative !== "boolean") return [];
  const signalClean = isClean("/signal/kind") && isClean("/signal/baseline");
  const kind = signalClean ? field(field(spec, "signal"), "kind") : undefined;
  const baseline = signalClean ? field(field(spec, "signal"), "baseline") : undefined;
  const findings: Finding[] = [];

  if (kind === "proportion" && typeof baseline === "number" && (baseline < 0 || baseline > 1)) {
    findings.push({
      code: "out_of_range",
      pointer: "/signal/baseline",
      target: "value",
      message: `signal.baseline is ${baseline}, but a proportion lies between 0 and 1`,
      hint:
        baseline > 1 && baseline <= 100
          ? `write it as a fraction: ${baseline / 100}`
          : "write the share as a fraction, e.g. 0.68 for 68%",
    });
    return findings;
  }

  if (relative) {
    if (value <= 0) {
      findings.push({
        code: "out_of_range",
        pointer: "/target/value",
        target: "value",
        message: `target.value must be greater than 0 for a relative target, got ${value}`,
        hint: `give the size of the change, e.g. 10%; direction: ${String(direction)} already says which way it goes`,
      });
    } else if (kind === "proportion" && direction === "decrease" && value > 1) {
      findings.push({
        code: "target_unreachable",
        pointer: "/target/value",
        target: "value",
        message: `target.value asks a proportion to fall by ${formatPercent(value)}, below 0`,
        hint: "a relative decrease is at most 100%",
      });
    } else if (
      kind === "proportion" &&
      direction === "increase" &&
      typeof baseline === "number" &&
      baseline * (1 + value) > 1
    ) {
      findings.push({
        code: "target_unreachable",
        pointer: "/target/value",
        target: "value",
        message: `target.value asks the proportion to rise by ${formatPercent(value)} from ${baseline}, to ${Number((baseline * (1 + value)).toPrecision(12))}: above 1 (100%)`,
        hint: `a proportion cannot exceed 1; the largest relative increase from ${baseline} is ${Math.floor((1 / baseline - 1) * 10_000) / 100}%`,
      });
    }
    return findings;
  }

  if (kind === "proportion" && (value < 0 || value > 1)) {
    findings.push({
      code: "out_of_range",
      pointer: "/target/value",
      target: "value",
      message: `target.value is ${value}, but the signal is a proportion, which lies between 0 and 1`,
      hint: "with relative: false, value is the level to reach, between 0 and 1 (0% and 100%), e.g. 0.6 or 60%",
    });
    return findings;
  }
  if (typeof baseline === "number" && (direction === "increase" || direction === "decrease")) {
    const wrongSide = direction === "increase" ? value <= baseline : value >= baseline;
    if (wrongSide) {
      findings.push({
        code: "target_direction_conflict",
        pointer: "/target/value",
        target: "value",
        message: `target: direction is ${direction} but the target level ${value} is ${direction === "increase" ? "not above" : "not below"} the baseline ${baseline}`,
        hint: `with relative: false, value is the level to reach: ${direction === "increase" ? "raise it above" : "lower it below"} ${baseline}, or change direction to ${direction === "increase" ? "decrease" : "increase"}`,
      });
    }
  }
  return findings;
}

function field(value: unknown, key: string): unknown {
  return isPlainObject(value) ? value[key] : undefined;
}
