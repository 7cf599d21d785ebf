/**
 * The one place where the unit strings of outcome.yaml become numbers:
 * percentages become fractions, durations become seconds.
 *
 * The accepted forms are the patterns of `$defs.Percentage` and
 * `$defs.Duration` in `schemas/outcome.schema.json`, read from the schema so
 * that editors, ajv and these parsers can never disagree.
 */
import schema from "../../../schemas/outcome.schema.json" with { type: "json" };

/** `^[1-9][0-9]*[smhdw]$`: a positive whole number and one unit letter. */
const DURATION_PATTERN = new RegExp(schema.$defs.Duration.pattern, "u");

/** `5%`, `0.5%`, `-2%`, `+1.5%`, `.5%`: the string branch of `$defs.Percentage`. */
const PERCENTAGE_PATTERN = new RegExp(stringBranchPattern(schema.$defs.Percentage.anyOf), "u");

function stringBranchPattern(branches: readonly object[]): string {
  for (const branch of branches) {
    if ("pattern" in branch && typeof branch.pattern === "string") return branch.pattern;
  }
  // Only reachable if someone edits the schema's Percentage; fail at load, loudly.
  throw new Error("schemas/outcome.schema.json: $defs.Percentage has no string branch with a pattern");
}

const SECONDS_PER_UNIT = { s: 1, m: 60, h: 3_600, d: 86_400, w: 604_800 } as const;
type DurationUnit = keyof typeof SECONDS_PER_UNIT;

/** Spelled-out unit words people write, mapped to our unit letters (for hints). */
const UNIT_WORDS: ReadonlyArray<readonly [RegExp, DurationUnit]> = [
  [/^(?:s|secs?|seconds?)$/iu, "s"],
  [/^(?:m|mins?|minutes?)$/iu, "m"],
  [/^(?:h|hrs?|hours?)$/iu, "h"],
  [/^(?:d|days?)$/iu, "d"],
  [/^(?:w|wks?|weeks?)$/iu, "w"],
];

const DURATION_FORM = "a number and a unit, such as 15m, 6h or 14d";
const DURATION_HELP = `write ${DURATION_FORM}`;
const PERCENTAGE_HELP = "write a percentage such as 5% or a fraction such as 0.05";

/** The diagnostic code a {@link UnitError} maps to. */
export type UnitErrorCode = "bad_duration" | "bad_percentage";

/**
 * Thrown by {@link parseDuration} and {@link parsePercentage}. `message` is a
 * full sentence for a person; `problem` and `hint` are its two halves, for
 * callers that show them separately (the diagnostics do).
 */
export class UnitError extends Error {
  override readonly name = "UnitError";
  /** What is wrong, e.g. `"15 minutes" is not a duration`. */
  readonly problem: string;
  /** How to fix it, e.g. `write 15m (a number and a unit, such as 15m, 6h or 14d)`. */
  readonly hint: string;

  constructor(
    readonly code: UnitErrorCode,
    readonly value: unknown,
    problem: string,
    hint: string,
  ) {
    super(`${problem}: ${hint}`);
    this.problem = problem;
    this.hint = hint;
  }
}

/** `"abc"`, `12`, `true`, `null`, `a list`: a value as a person would read it in YAML. */
export function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null || value === undefined) return "nothing (null)";
  if (Array.isArray(value)) return "a list";
  if (value instanceof Date) return `the date ${value.toISOString()}`;
  if (typeof value === "object") return "a mapping";
  return String(value);
}

/**
 * Parses a duration of outcome.yaml into seconds.
 *
 * Accepts a positive whole number followed by one unit: `s` seconds,
 * `m` minutes, `h` hours, `d` days, `w` weeks (`90s`, `15m`, `6h`, `14d`, `2w`).
 * Fractions (`1.5h`), compound forms (`1h30m`), zero and bare numbers are
 * rejected so that every duration reads the same way.
 *
 * @param value the YAML value (normally a string)
 * @returns the duration in seconds, a positive safe integer
 * @throws {UnitError} code `bad_duration`, with a suggested rewrite when one is obvious
 * @example parseDuration('15m') // 900
 */
export function parseDuration(value: unknown): number {
  // No trimming: the parser accepts exactly what the schema pattern accepts.
  if (typeof value === "string" && DURATION_PATTERN.test(value)) {
    const unit = value.slice(-1) as DurationUnit;
    const seconds = Number(value.slice(0, -1)) * SECONDS_PER_UNIT[unit];
    if (!Number.isSafeInteger(seconds)) {
      throw new UnitError(
        "bad_duration",
        value,
        `${describeValue(value)} is too long a duration`,
        "write a duration shorter than 285 million years, such as 52w",
      );
    }
    return seconds;
  }
  throw new UnitError("bad_duration", value, `${describeValue(value)} is not a duration`, durationHint(value));
}

function durationHint(value: unknown): string {
  if (typeof value === "number" && Number.isInteger(value) && value > 0) {
    return `add a unit: ${value}s, ${value}m, ${value}h or ${value}d`;
  }
  if (typeof value !== "string") return DURATION_HELP;
  const text = value.trim();
  const spelled = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/iu.exec(text);
  if (spelled) {
    const amount = Number(spelled[1]);
    const unit = UNIT_WORDS.find(([words]) => words.test(spelled[2] ?? ""))?.[1];
    if (unit !== undefined && amount === 0) return `a duration must be positive; ${DURATION_HELP}`;
    if (unit !== undefined && Number.isInteger(amount)) return `write ${amount}${unit} (${DURATION_FORM})`;
    if (unit !== undefined) {
      // 1.5h → 90m: the next smaller unit always gives a whole number for one decimal.
      const smaller = smallerUnit(unit);
      if (smaller !== undefined) {
        const converted = (amount * SECONDS_PER_UNIT[unit]) / SECONDS_PER_UNIT[smaller];
        if (Number.isInteger(converted)) {
          return `fractions are not allowed: write ${converted}${smaller} instead of ${text}`;
        }
      }
      return `fractions are not allowed; ${DURATION_HELP}`;
    }
  }
  if (/^\d+$/u.test(text)) return `add a unit: ${text}s, ${text}m, ${text}h or ${text}d`;
  if (/^\d+[smhdw](?:\d+[smhdw])+$/u.test(text)) return `use a single unit, e.g. 90m rather than 1h30m`;
  return DURATION_HELP;
}

function smallerUnit(unit: DurationUnit): DurationUnit | undefined {
  const order: readonly DurationUnit[] = ["s", "m", "h", "d", "w"];
  return order[order.indexOf(unit) - 1];
}

/**
 * Parses a percentage of outcome.yaml into a fraction.
 *
 * Accepts a finite number, taken as a fraction already (`0.05`), or a string
 * of a number followed by `%` (`5%`, `0.5%`, `-2%`), divided by 100. The
 * division shifts the decimal point in the text, so `12.3%` gives exactly
 * the double nearest to 0.123.
 *
 * Ranges (e.g. alpha at most 0.5) are the caller's business: a percentage
 * can be negative or above 100%.
 *
 * @param value the YAML value (a number or a string)
 * @returns the fraction (`"5%"` → 0.05)
 * @throws {UnitError} code `bad_percentage`, with a suggested rewrite when one is obvious
 * @example parsePercentage('0.5%') // 0.005
 */
export function parsePercentage(value: unknown): number {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  // No trimming: the parser accepts exactly what the schema pattern accepts.
  if (typeof value === "string" && PERCENTAGE_PATTERN.test(value)) {
    const fraction = Number(`${value.slice(0, -1)}e-2`);
    // -0% is 0; a number too large for a double ("1e400%"-sized digits) is not finite.
    if (Number.isFinite(fraction)) return fraction === 0 ? 0 : fraction;
  }
  throw new UnitError("bad_percentage", value, `${describeValue(value)} is not a percentage`, percentageHint(value));
}

function percentageHint(value: unknown): string {
  if (typeof value !== "string") return PERCENTAGE_HELP;
  const text = value.trim();
  const number = /^([+-]?(?:\d+(?:[.,]\d+)?|[.,]\d+))\s*(%|percent|pct|per\s*cent)?$/iu.exec(text);
  if (number) {
    const digits = (number[1] ?? "").replace(",", ".");
    if (number[2] === undefined) {
      // "5" quoted: a percent sign forgotten, or a fraction written as a string.
      return `write ${digits}% for ${digits} percent, or the fraction ${Number(`${digits}e-2`)} without quotes`;
    }
    return `write ${digits}%`;
  }
  return PERCENTAGE_HELP;
}
