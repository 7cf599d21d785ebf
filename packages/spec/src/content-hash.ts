/**
 * The content hash of a normalised outcome: what changed in meaning, not in
 * formatting. Comments, key order, quoting and `5%` vs `0.05` do not change it.
 */
import { createHash } from "node:crypto";

/**
 * JSON with object keys sorted (recursively) and no whitespace; arrays keep
 * their order, since order is meaningful there (arms).
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    // fromEntries defines own properties, so a `__proto__` key stays a key.
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]),
    );
  }
  return value;
}

/** SHA-256 (lowercase hex) of {@link canonicalJson}. */
export function contentHash(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value)).digest("hex");
}
