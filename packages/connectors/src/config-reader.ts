/**
 * Reads a connector's settings with errors that name the field, the value
 * and the fix. Settings arrive either as written in outcome.yaml
 * (`timeout: 30s`) or normalised by @outcome-runtime/spec (`timeout: 30`,
 * seconds); both are accepted.
 */

import { formatSeconds } from "@outcome-runtime/core";
import type { ConnectorConfig } from "./connector";
import { ConnectorError } from "./connector-error";

const DURATION = /^([1-9][0-9]*)([smhdw])$/u;
const SECONDS_PER_UNIT: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** Describes a value for a message: strings quoted, others as JSON. */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (value === undefined) return "nothing";
  if (typeof value === "bigint") return `${value}`;
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** Typed access to one connector's settings. */
export class ConfigReader {
  readonly type: string;
  private readonly config: ConnectorConfig;

  constructor(config: ConnectorConfig, known: readonly string[]) {
    this.config = config;
    this.type = config.type;
    const unknown = Object.keys(config).filter((key) => key !== "type" && !known.includes(key));
    if (unknown.length > 0) {
      throw this.invalid(
        unknown[0] ?? "",
        `unknown ${unknown.length === 1 ? "field" : "fields"} ${unknown.map((k) => `"${k}"`).join(", ")}`,
        `the ${this.type} connector takes: type, ${known.join(", ")}`,
        { unknown },
      );
    }
  }

  /** An `invalid_config` error about `field`. */
  invalid(field: string, problem: string, fix: string, details: Record<string, unknown> = {}): ConnectorError {
    return new ConnectorError("invalid_config", `${this.type} connector: ${field}: ${problem}; ${fix}`, {
      details: { connector: this.type, field, problem, fix, ...details },
    });
  }

  has(field: string): boolean {
    return this.config[field] !== undefined && this.config[field] !== null;
  }

  string(field: string, fix: string): string {
    const value = this.config[field];
    if (typeof value !== "string" || value.trim() === "") {
      throw this.invalid(
        field,
        value === undefined ? "is missing" : `must be non-empty text, got ${show(value)}`,
        fix,
        value === undefined ? {} : { value },
      );
    }
    return value;
  }

  optionalString(field: string, fix: string): string | undefined {
    return this.has(field) ? this.string(field, fix) : undefined;
  }

  /** Seconds, from a number of seconds or a duration such as `30s`. */
  durationSeconds(field: string, fallback: number): number;
  durationSeconds(field: string, fallback?: undefined): number | undefined;
  durationSeconds(field: string, fallback?: number): number | undefined {
    if (!this.has(field)) return fallback;
    const value = this.config[field];
    if (typeof value === "number" && Number.isFinite(value) && value > 0) return value;
    const match = typeof value === "string" ? DURATION.exec(value) : null;
    if (match !== null) {
      const seconds = Number(match[1]) * (SECONDS_PER_UNIT[match[2] ?? "s"] ?? 1);
      if (Number.isSafeInteger(seconds)) return seconds;
    }
    throw this.invalid(field, `${show(value)} is not a duration`, "write a number and a unit, e.g. 30s, 15m or 6h", {
      value,
    });
  }

  integer(field: string, fallback: number, min: number, max: number): number {
    if (!this.has(field)) return fallback;
    const value = this.config[field];
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      throw this.invalid(
        field,
        `${show(value)} is not a whole number from ${min} to ${max}`,
        `write a whole number such as ${fallback}`,
        {
          value,
        },
      );
    }
    return value;
  }

  positiveNumber(field: string): number | undefined {
    if (!this.has(field)) return undefined;
    const value = this.config[field];
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
      throw this.invalid(field, `${show(value)} is not a number greater than 0`, "write e.g. 60", { value });
    }
    return value;
  }

  oneOf<T extends string>(field: string, allowed: readonly T[], fallback: T): T {
    if (!this.has(field)) return fallback;
    const value = this.config[field];
    if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
      throw this.invalid(
        field,
        `${show(value)} is not one of ${allowed.join(", ")}`,
        `write one of ${allowed.join(", ")}`,
        {
          value,
        },
      );
    }
    return value as T;
  }

  raw(field: string): unknown {
    return this.config[field];
  }
}

export { formatSeconds };
