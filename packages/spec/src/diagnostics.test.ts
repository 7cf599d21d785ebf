import { describe, expect, it } from "vitest";
import { type Diagnostic, formatDiagnostics } from "./index.js";

const unknownKey: Diagnostic = {
  file: "outcome.yaml",
  line: 12,
  column: 3,
  pointer: "/signal/metirc",
  code: "unknown_key",
  message: 'unknown key "metirc" in signal',
  hint: 'did you mean "metric"?',
};
const missing: Diagnostic = {
  file: "outcome.yaml",
  line: 1,
  column: 1,
  pointer: "/horizon",
  code: "missing_field",
  message: 'the outcome is missing the required field "horizon"',
};

describe("formatDiagnostics", () => {
  it("prints compiler-style lines, hints and a summary", () => {
    expect(formatDiagnostics([unknownKey, missing])).toBe(
      [
        'outcome.yaml:12:3: error[unknown_key]: unknown key "metirc" in signal',
        '  hint: did you mean "metric"?',
        'outcome.yaml:1:1: error[missing_field]: the outcome is missing the required field "horizon"',
        "2 errors",
      ].join("\n"),
    );
  });

  it("says 1 error and 0 errors", () => {
    expect(formatDiagnostics([missing]).split("\n").at(-1)).toBe("1 error");
    expect(formatDiagnostics([])).toBe("0 errors");
  });

  it("colours only when asked", () => {
    expect(formatDiagnostics([unknownKey])).not.toContain("\u001b[");
    const coloured = formatDiagnostics([unknownKey], { color: true });
    expect(coloured).toContain("\u001b[31m");
    const esc = String.fromCharCode(27);
    expect(coloured.replaceAll(new RegExp(`${esc}\\[\\d+m`, "g"), "")).toBe(formatDiagnostics([unknownKey]));
  });
});
