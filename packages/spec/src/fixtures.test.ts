/**
 * Every malformed fixture in fixtures/invalid yields exactly the diagnostics
 * listed for it in expected.json: one per mistake, on the right line.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { DIAGNOSTIC_CODES, parseOutcome } from "./index.js";

interface Expectation {
  description: string;
  /** The codes of the diagnostics, in order (sorted by position). */
  codes: string[];
  /** The line of each diagnostic; null where the line is not meaningful. */
  lines?: (number | null)[];
}

const dir = fileURLToPath(new URL("../fixtures/invalid/", import.meta.url));
const expected = JSON.parse(readFileSync(`${dir}expected.json`, "utf8")) as Record<string, Expectation>;
const files = readdirSync(dir).filter((file) => file !== "expected.json");

describe("invalid fixtures", () => {
  it("has at least 30 fixtures, each listed in expected.json and vice versa", () => {
    expect(files.length).toBeGreaterThanOrEqual(30);
    expect([...files].sort()).toEqual(Object.keys(expected).sort());
  });

  it("covers the mistakes named in the spec", () => {
    for (const name of [
      "bad-yaml-syntax.yaml",
      "wrong-type-alpha.yaml",
      "unknown-top-level-key.yaml",
      "typo-in-key.yaml",
      "bad-duration.yaml",
      "bad-percentage.yaml",
      "weights-not-summing.yaml",
      "empty.yaml",
      "comment-only.yaml",
      "alias-bomb.yaml",
      "top-level-list.yaml",
      "duplicate-key.yaml",
      "unknown-connector.yaml",
      "missing-signal.yaml",
      "no-control-arm.yaml",
      "target-direction-conflict.yaml",
      "tabs-indentation.yaml",
      "json-syntax-error.json",
      "guardrail-wrong-type.yaml",
      "gate-bad-email.yaml",
    ]) {
      expect(files).toContain(name);
    }
  });

  it.each(files)("%s", (file) => {
    const expectation = expected[file];
    if (expectation === undefined) throw new Error(`${file} is not in expected.json`);
    const source = readFileSync(`${dir}${file}`, "utf8");
    let result: ReturnType<typeof parseOutcome> | undefined;
    expect(() => {
      result = parseOutcome(source, { file });
    }).not.toThrow();
    if (result === undefined || result.ok) throw new Error(`${file} parsed as a valid outcome`);

    expect(result.errors.map((e) => e.code)).toEqual(expectation.codes);
    for (const [i, e] of result.errors.entries()) {
      expect(e.file).toBe(file);
      expect(e.line).toBeGreaterThanOrEqual(1);
      expect(e.column).toBeGreaterThanOrEqual(1);
      expect(e.message.length).toBeGreaterThan(0);
      expect(Object.keys(DIAGNOSTIC_CODES)).toContain(e.code);
      expect(e.pointer === "" || e.pointer.startsWith("/")).toBe(true);
      const line = expectation.lines?.[i];
      if (line !== undefined && line !== null) expect(e.line, `line of diagnostic ${i + 1}`).toBe(line);
    }
  });
});
