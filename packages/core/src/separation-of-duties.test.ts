import { describe, expect, it } from "vitest";
import {
  dutiesWindowSeconds,
  dutiesWindowStart,
  type RevisionAuthor,
  separationOfDutiesConflict,
} from "./separation-of-duties";

const HOUR = 3_600_000;
const opened = new Date("2026-12-09T12:00:00Z");
const gate = { kind: "launch_approval" as const, createdAt: opened, slaSeconds: 72 * 3600 };
const now = new Date(opened.getTime() + 2 * HOUR);
const rev = (revision: number, createdBy: string, hoursBeforeOpening: number): RevisionAuthor => ({
  revision,
  createdBy,
  createdAt: new Date(opened.getTime() - hoursBeforeOpening * HOUR),
});
const check = (name: string, revisions: RevisionAuthor[], extra: Partial<{ decision: string; kind: string }> = {}) =>
  separationOfDutiesConflict({
    actor: { name },
    gate: { ...gate, kind: (extra.kind ?? gate.kind) as typeof gate.kind },
    decision: extra.decision ?? "approve",
    revisions,
    now,
  });

describe("separation of duties at a launch", () => {
  it("the window is the gate's SLA before it opened, or before now when the clock is behind", () => {
    expect(dutiesWindowStart(gate, now)).toEqual(new Date(opened.getTime() - 72 * HOUR));
    const early = new Date(opened.getTime() - HOUR);
    expect(dutiesWindowStart(gate, early)).toEqual(new Date(early.getTime() - 72 * HOUR));
  });

  it("the window is at least 48 hours, so shortening the launch SLA does not shorten the bar", () => {
    expect(dutiesWindowSeconds({ slaSeconds: 60 })).toBe(48 * 3600);
    expect(dutiesWindowSeconds({ slaSeconds: 72 * 3600 })).toBe(72 * 3600);
    const short = { ...gate, slaSeconds: 60 };
    const revisions = [rev(2, "mallory@x.example", 47)];
    expect(
      separationOfDutiesConflict({
        actor: { name: "mallory@x.example" },
        gate: short,
        decision: "approve",
        revisions,
        now,
      }),
    ).toMatchObject({ revision: 2, since: new Date(opened.getTime() - 48 * HOUR) });
  });

  it("bars the approver who revised the outcome in the window, naming the latest such revision", () => {
    const revisions = [rev(1, "maya@x.example", 100), rev(2, "Mallory@x.example", 71), rev(3, "mallory@x.example", 1)];
    expect(check("MALLORY@x.example", revisions)).toEqual({
      revision: 3,
      revisedBy: "mallory@x.example",
      revisedAt: new Date(opened.getTime() - HOUR),
      since: new Date(opened.getTime() - 72 * HOUR),
    });
    // A revision made while the gate waits counts too.
    expect(check("mallory@x.example", [rev(2, "mallory@x.example", -1)])?.revision).toBe(2);
  });

  it("lets through others, revisions before the window, the creation, rejects and other gates", () => {
    const revisions = [rev(1, "maya@x.example", 1), rev(2, "mallory@x.example", 73)];
    expect(check("mallory@x.example", revisions)).toBeNull(); // before the window
    expect(check("maya@x.example", revisions)).toBeNull(); // creating is not revising
    expect(check("eng@x.example", [rev(2, "mallory@x.example", 1)])).toBeNull();
    expect(check("mallory@x.example", [rev(2, "mallory@x.example", 1)], { decision: "reject" })).toBeNull();
    expect(check("mallory@x.example", [rev(2, "mallory@x.example", 1)], { kind: "portfolio_review" })).toBeNull();
    // Exactly at the window's start still counts.
    expect(check("mallory@x.example", [rev(2, "mallory@x.example", 72)])?.revision).toBe(2);
  });
});
