import { describe, expect, it } from "vitest";
import { DomainError } from "./errors";
import {
  MAX_SIGNAL_RETENTION_DAYS,
  parseSignalRetention,
  RETENTION_EXPERIMENT_STATES,
  RETENTION_OUTCOME_STATES,
  retentionCutoff,
} from "./signal-retention";

function refusal(value: unknown): DomainError {
  try {
    parseSignalRetention(value);
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error(`${JSON.stringify(value)} was accepted`);
}

describe("parseSignalRetention", () => {
  it("takes whole days from 1 to the maximum, and null for keeping points forever", () => {
    expect(parseSignalRetention({ days: 90 })).toEqual({ days: 90 });
    expect(parseSignalRetention({ days: 1 })).toEqual({ days: 1 });
    expect(parseSignalRetention({ days: MAX_SIGNAL_RETENTION_DAYS })).toEqual({ days: MAX_SIGNAL_RETENTION_DAYS });
    expect(parseSignalRetention({ days: null })).toEqual({ days: null });
  });

  it.each([0, -3, 1.5, MAX_SIGNAL_RETENTION_DAYS + 1, "90", undefined, Number.NaN])(
    "refuses days %s, naming the field, the value and what to send",
    (days) => {
      const error = refusal({ days });
      expect(error.code).toBe("validation_failed");
      expect(error.details.field).toBe("signalRetention.days");
      expect(error.message).toContain("signalRetention.days must be a whole number of days from 1 to 36500");
      expect(error.message).toContain("or null to keep signal points forever");
      expect(error.message).toContain(`not ${JSON.stringify(days) ?? "undefined"}`);
    },
  );

  it("refuses a value that is not an object, and unknown fields", () => {
    expect(refusal(90)).toMatchObject({ code: "validation_failed", details: { field: "signalRetention" } });
    expect(refusal(90).message).toContain('like {"days": 90} or {"days": null}, not 90');
    expect(refusal(null).details.field).toBe("signalRetention");
    const extra = refusal({ days: 30, hours: 2 });
    expect(extra.details.field).toBe("signalRetention.hours");
    expect(extra.message).toContain('unknown field "hours"');
  });
});

describe("what retention may touch", () => {
  it("only experiments in a final state and outcomes over for good (an achieved one can be reopened)", () => {
    expect([...RETENTION_EXPERIMENT_STATES].sort()).toEqual(["iterated", "rejected", "rolled_back", "shipped"]);
    expect([...RETENTION_OUTCOME_STATES].sort()).toEqual(["abandoned", "missed"]);
  });

  it("cuts off whole days before now, or not at all", () => {
    const now = new Date("2026-12-07T05:00:00Z");
    expect(retentionCutoff(now, 30)?.toISOString()).toBe("2026-11-07T05:00:00.000Z");
    expect(retentionCutoff(now, null)).toBeNull();
  });
});
