import { describe, expect, it } from "vitest";
import {
  formatConfidence,
  formatCount,
  formatDuration,
  formatEffect,
  formatGuardrailAmount,
  formatGuardrailMargin,
  formatInterval,
  formatMean,
  formatPercentagePoints,
  formatPrediction,
  formatPValue,
  formatRelative,
  formatShare,
  formatSignedNumber,
  formatUtc,
  isWebUrl,
} from "./format";

describe("effects and lifts", () => {
  it("shows absolute effects of proportions in signed percentage points", () => {
    expect(formatPercentagePoints(0.012)).toBe("+1.20 pp");
    expect(formatPercentagePoints(-0.0035)).toBe("-0.35 pp");
    expect(formatPercentagePoints(0)).toBe("0.00 pp");
    // Rounds to zero: no sign, so "-0.00" never appears.
    expect(formatPercentagePoints(-0.00001)).toBe("0.00 pp");
    expect(formatPercentagePoints(null)).toBe("n/a");
  });

  it("shows relative lifts as signed percents with precision that fits their size", () => {
    expect(formatRelative(0.052)).toBe("+5.2 %");
    expect(formatRelative(-0.004)).toBe("-0.40 %");
    expect(formatRelative(1.5)).toBe("+150 %");
    expect(formatRelative(null)).toBe("n/a");
  });

  it("formats an effect in the metric's units", () => {
    expect(formatEffect(0.012, "proportion")).toBe("+1.20 pp");
    expect(formatEffect(-2.345, "mean")).toBe("-2.345");
    expect(formatEffect(1234.56, "mean")).toBe("+1,235");
    expect(formatInterval(0.002, 0.021, "proportion")).toBe("[+0.20 pp, +2.10 pp]");
    expect(formatInterval(-0.5, 1.25, "mean")).toBe("[-0.5, +1.25]");
    expect(formatInterval(null, 0.02, "proportion")).toBe("n/a");
  });

  it("formats arm means, shares and counts", () => {
    expect(formatMean(0.0342, "proportion")).toBe("3.42 %");
    expect(formatMean(42.125, "mean")).toBe("42.13");
    expect(formatMean(null, "mean")).toBe("n/a");
    expect(formatShare(0.5)).toBe("50 %");
    expect(formatShare(1 / 3)).toBe("33.33 %");
    expect(formatCount(12345)).toBe("12,345");
    expect(formatSignedNumber(0)).toBe("0");
    expect(formatConfidence(0.05)).toBe("95 %");
  });

  it("formats guardrail harms signed and margins unsigned, relative ones as percents", () => {
    expect(formatGuardrailAmount(0.004, true)).toBe("+0.40 %");
    expect(formatGuardrailAmount(120, false)).toBe("+120");
    expect(formatGuardrailAmount(null, false)).toBe("n/a");
    expect(formatGuardrailMargin(0.02, true)).toBe("2 %");
    expect(formatGuardrailMargin(50, false)).toBe("50");
  });

  it("states a prediction with its direction and kind", () => {
    expect(formatPrediction({ direction: "increase", effect: 0.05, relative: true })).toBe(
      "increase by 5.0 % (relative)",
    );
    expect(formatPrediction({ direction: "decrease", effect: 0.004, relative: false })).toBe(
      "decrease by 0.004 (absolute)",
    );
    expect(formatPrediction(null)).toBe("none stated");
  });
});

describe("formatPValue", () => {
  it("shows two significant digits and floors tiny values", () => {
    expect(formatPValue(0.0031)).toBe("0.0031");
    expect(formatPValue(0.04567)).toBe("0.046");
    expect(formatPValue(0.5)).toBe("0.5");
    expect(formatPValue(1)).toBe("1");
    expect(formatPValue(0.0001)).toBe("0.0001");
    expect(formatPValue(0.00009)).toBe("< 0.0001");
    expect(formatPValue(0)).toBe("< 0.0001");
    expect(formatPValue(null)).toBe("n/a");
  });
});

describe("formatDuration", () => {
  it("uses at most two units", () => {
    expect(formatDuration(3 * 86_400 + 4 * 3_600 + 59)).toBe("3 d 4 h");
    expect(formatDuration(2 * 86_400)).toBe("2 d");
    expect(formatDuration(5_400)).toBe("1 h 30 min");
    expect(formatDuration(3_600)).toBe("1 h");
    expect(formatDuration(600)).toBe("10 min");
    expect(formatDuration(45)).toBe("45 s");
    expect(formatDuration(0)).toBe("0 s");
    expect(formatDuration(null)).toBe("n/a");
  });
});

describe("formatUtc", () => {
  it("shows an ISO time in UTC to the minute, whatever its offset", () => {
    expect(formatUtc("2026-12-03T14:05:09Z")).toBe("2026-12-03 14:05 UTC");
    expect(formatUtc("2026-12-03T16:05:00+02:00")).toBe("2026-12-03 14:05 UTC");
    expect(formatUtc("not a date")).toBe("not a date");
  });
});

describe("isWebUrl", () => {
  it("accepts only absolute http and https URLs", () => {
    expect(isWebUrl("https://github.com/acme/shop/pull/42")).toBe(true);
    expect(isWebUrl("http://localhost:8080/gates/1")).toBe(true);
    for (const url of [
      "javascript:alert(1)",
      " JavaScript:alert(1)",
      "data:text/html,<script>alert(1)</script>",
      "vbscript:msgbox(1)",
      "/relative/path",
      "github.com/acme",
      "",
      null,
    ]) {
      expect(isWebUrl(url), String(url)).toBe(false);
    }
  });
});
