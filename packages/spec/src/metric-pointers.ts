/**
 * Every metric an outcome reads, each with its JSON pointer in the document:
 * the signal, each guardrail and each secondary metric. The one list the
 * connector checks (known type, SQL policy, credentials) walk, so a metric
 * added to the format cannot skip them.
 */
import { isPlainObject } from "./normalize-outcome.js";

/** What a metric is for: the outcome's signal, a guardrail, or a secondary metric (reported, never decides). */
type MetricRole = "primary" | "guardrail" | "secondary";

/** One metric of a document: its pointer (`/constraints/guardrails/0`) and role. */
export interface MetricPointer {
  readonly pointer: string;
  readonly role: MetricRole;
}

/**
 * The metrics of a document, parsed or not (anything that is not a list
 * where a list belongs is skipped): the signal first, then the guardrails,
 * then the secondary metrics, each in document order.
 */
export function metricPointers(spec: unknown): MetricPointer[] {
  const found: MetricPointer[] = [{ pointer: "/signal", role: "primary" }];
  if (!isPlainObject(spec)) return found;
  const constraints = spec.constraints;
  const guardrails = isPlainObject(constraints) ? constraints.guardrails : undefined;
  if (Array.isArray(guardrails)) {
    for (let i = 0; i < guardrails.length; i++)
      found.push({ pointer: `/constraints/guardrails/${i}`, role: "guardrail" });
  }
  const secondary = spec.secondary_metrics;
  if (Array.isArray(secondary)) {
    for (let i = 0; i < secondary.length; i++) found.push({ pointer: `/secondary_metrics/${i}`, role: "secondary" });
  }
  return found;
}

/** The value at a JSON pointer (`/constraints/guardrails/0/connector`) of a document, or undefined. */
export function valueAt(spec: unknown, pointer: string): unknown {
  let value: unknown = spec;
  for (const key of pointer.split("/").slice(1)) {
    if (Array.isArray(value)) value = value[Number(key)];
    else if (isPlainObject(value)) value = value[key];
    else return undefined;
  }
  return value;
}
