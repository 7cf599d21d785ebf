import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseDuration, parsePercentage, UnitError } from "./units.js";

function unitError(fn: () => unknown): UnitError {
  try {
    fn();
  } catch (error) {
    if (error instanceof UnitError) return error;
    throw error;
  }
  throw new Error("expected a UnitError");
}

describe("parseDuration", () => {
  it.each([
    ["90s", 90],
    ["15m", 900],
    ["6h", 21_600],
    ["1d", 86_400],
    ["14d", 1_209_600],
    ["2w", 1_209_600],
    ["60d", 5_184_000],
  ])("%s is %i seconds", (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each([
    ["15 minutes", "write 15m"],
    ["1.5h", "write 90m instead of 1.5h"],
    ["1.5d", "write 36h instead of 1.5d"],
    ["15", "add a unit"],
    ["1h30m", "single unit"],
    ["0m", "positive"],
    ["0 min", "positive"],
    ["-5m", "a number and a unit"],
    ["", "a number and a unit"],
    [" 15m", "a number and a unit"],
    ["15M", "write 15m"],
    ["soon", "a number and a unit"],
  ])("rejects %j with a hint mentioning %j", (text, hint) => {
    const error = unitError(() => parseDuration(text));
    expect(error.code).toBe("bad_duration");
    expect(error.problem).toBe(`${JSON.stringify(text)} is not a duration`);
    expect(error.hint).toContain(hint);
    expect(error.message).toBe(`${error.problem}: ${error.hint}`);
  });

  it("explains a duration written in words", () => {
    expect(unitError(() => parseDuration("15 minutes")).message).toBe(
      '"15 minutes" is not a duration: write 15m (a number and a unit, such as 15m, 6h or 14d)',
    );
  });

  it("rejects non-strings, suggesting a unit for a bare whole number", () => {
    expect(unitError(() => parseDuration(15)).hint).toBe("add a unit: 15s, 15m, 15h or 15d");
    for (const value of [null, undefined, true, 1.5, [], {}]) {
      expect(unitError(() => parseDuration(value)).code).toBe("bad_duration");
    }
  });

  it("rejects durations beyond a safe integer number of seconds", () => {
    const error = unitError(() => parseDuration("99999999999999999w"));
    expect(error.problem).toContain("too long");
  });

  it("property: n minutes are 60n seconds", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e12 }), (n) => {
        expect(parseDuration(`${n}m`)).toBe(60 * n);
      }),
    );
  });

  it("property: every unit scales its number exactly", () => {
    const factors = { s: 1, m: 60, h: 3_600, d: 86_400, w: 604_800 } as const;
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e9 }), fc.constantFrom("s", "m", "h", "d", "w" as const), (n, unit) => {
        expect(parseDuration(`${n}${unit}`)).toBe(n * factors[unit]);
      }),
    );
  });

  it("property: any other input throws a UnitError, never anything else", () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        try {
          const seconds = parseDuration(value);
          expect(Number.isSafeInteger(seconds) && seconds > 0).toBe(true);
        } catch (error) {
          expect(error).toBeInstanceOf(UnitError);
        }
      }),
    );
  });
});

describe("parsePercentage", () => {
  it.each([
    ["5%", 0.05],
    ["0.5%", 0.005],
    ["-2%", -0.02],
    ["+1.5%", 0.015],
    [".5%", 0.005],
    ["10%", 0.1],
    ["3%", 0.03],
    ["50%", 0.5],
    ["12.3%", 0.123],
    ["100%", 1],
    ["0%", 0],
    ["-0%", 0],
  ])("%s is %d", (text, fraction) => {
    expect(parsePercentage(text)).toBe(fraction);
  });

  it("takes numbers as fractions already", () => {
    expect(parsePercentage(0.05)).toBe(0.05);
    expect(parsePercentage(-0.02)).toBe(-0.02);
    expect(parsePercentage(3)).toBe(3);
  });

  it.each([
    ["3 percent", "write 3%"],
    ["5 %", "write 5%"],
    ["5,5%", "write 5.5%"],
    ["5", "write 5%"],
    ["5%%", "a percentage such as 5%"],
    ["five", "a percentage such as 5%"],
    ["", "a percentage such as 5%"],
  ])("rejects %j with a hint mentioning %j", (text, hint) => {
    const error = unitError(() => parsePercentage(text));
    expect(error.code).toBe("bad_percentage");
    expect(error.problem).toBe(`${JSON.stringify(text)} is not a percentage`);
    expect(error.hint).toContain(hint);
  });

  it("rejects non-finite numbers and other types", () => {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, null, undefined, true, [], {}]) {
      expect(unitError(() => parsePercentage(value)).code).toBe("bad_percentage");
    }
  });

  it("property: n% is the double nearest to n/100", () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e9, max: 1e9 }), fc.integer({ min: 0, max: 999 }), (whole, decimals) => {
        const text = `${whole}.${decimals}`;
        expect(parsePercentage(`${text}%`)).toBe(Number(`${text}e-2`));
      }),
    );
  });

  it("property: a finite number is returned unchanged", () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
        expect(Object.is(parsePercentage(x), x)).toBe(true);
      }),
    );
  });

  it("property: any other input throws a UnitError, never anything else", () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        try {
          expect(Number.isFinite(parsePercentage(value))).toBe(true);
        } catch (error) {
          expect(error).toBeInstanceOf(UnitError);
        }
      }),
    );
  });
});
