import { beforeAll, describe, expect, it } from "vitest";
import { type AsosComparison, loadAsos } from "./asos";
import { type DemoRow, fullDataResult, renderReport, summarize } from "./report";

function row(overrides: Partial<DemoRow> & Pick<DemoRow, "key">): DemoRow {
  return {
    decisionDay: null,
    lastDay: 30,
    decision: "running",
    reason: null,
    effect: null,
    ci: null,
    full: { effect: 0.001, pValue: 0.2, ci: [-0.0005, 0.0025], significant: false },
    ...overrides,
  };
}

// Four decisions before the end, one on the last day, one running to the end.
const rows: DemoRow[] = [
  row({
    key: "asos-aaaaaa-v1",
    decisionDay: 10,
    lastDay: 40,
    decision: "analysing (win)",
    reason: "always-valid p 0.003 < 0.05",
    effect: 0.0123,
    ci: [0.002, 0.0226],
    full: { effect: 0.011, pValue: 0.00001, ci: [0.008, 0.014], significant: true },
  }),
  row({
    key: "asos-bbbbbb-v2",
    decisionDay: 5.5,
    lastDay: 20,
    decision: "paused (kill)",
    reason: "harm beyond the kill threshold",
    effect: -0.004,
    ci: [-0.007, -0.001],
    // Significant the other way on the full data: a contradiction to list.
    full: { effect: 0.002, pValue: 0.01, ci: [0.0005, 0.0035], significant: true },
  }),
  row({
    key: "asos-cccccc-v1",
    decisionDay: 12,
    lastDay: 30,
    decision: "analysing (futility)",
    reason: "interval inside ±MDE",
    effect: -0.0001,
    ci: [-0.001, 0.0008],
    // Opposite sign but not significant: not a contradiction.
    full: { effect: 0.0002, pValue: 0.6, ci: [-0.0006, 0.001], significant: false },
  }),
  row({
    key: "asos-dddddd-v1",
    decisionDay: 3,
    lastDay: 10,
    decision: "analysing (srm)",
    reason: "SRM p < 0.001",
    effect: null,
    ci: null,
  }),
  row({
    key: "asos-eeeeee-v1",
    decisionDay: 25,
    lastDay: 25,
    decision: "analysing (win)",
    reason: "always-valid p 0.04 < 0.05",
    effect: 0.003,
    ci: [0.0001, 0.0059],
    full: { effect: 0.0031, pValue: 0.002, ci: [0.0011, 0.0051], significant: true },
  }),
  row({ key: "asos-ffffff-v3", lastDay: 60, effect: 0.0005, ci: [-0.001, 0.002] }),
];

describe("summarize", () => {
  it("counts early stops, agreement in direction, contradictions and days saved", () => {
    const summary = summarize(rows);
    expect(summary.total).toBe(6);
    expect(summary.decided).toBe(5);
    expect(summary.stoppedEarly).toBe(4); // the decision on the last day is not early
    // Decided with an effect: aaaaaa (same), bbbbbb (opposite), cccccc (opposite), eeeeee (same).
    expect(summary.directionCompared).toBe(4);
    expect(summary.agreeInDirection).toBe(2);
    expect(summary.contradictingSignificant.map((r) => r.key)).toEqual(["asos-bbbbbb-v2"]);
    // (40 − 10) + (20 − 5.5) + (30 − 12) + (10 − 3)
    expect(summary.experimentDaysSaved).toBe(69.5);
    expect(summary.byDecision).toEqual({
      "analysing (win)": 2,
      "paused (kill)": 1,
      "analysing (futility)": 1,
      "analysing (srm)": 1,
      running: 1,
    });
  });

  it("is all zeros for no rows", () => {
    expect(summarize([])).toEqual({
      total: 0,
      stoppedEarly: 0,
      decided: 0,
      agreeInDirection: 0,
      directionCompared: 0,
      contradictingSignificant: [],
      experimentDaysSaved: 0,
      byDecision: {},
    });
  });
});

describe("renderReport", () => {
  const text = renderReport(rows);
  const lines = text.split("\n");
  const headerAt = lines.findIndex((line) => line.startsWith("experiment"));
  const table = lines.slice(headerAt, headerAt + 2 + rows.length);

  it("states the unit of the effects in the header", () => {
    expect(lines[0]).toContain("percentage points (pp) with 3 decimals");
    expect(table[0]).toContain("effect pp");
    expect(table[0]).toContain("always-valid CI pp");
  });

  it("shows effects in percentage points with 3 decimals and marks the direction", () => {
    const win = table.find((line) => line.startsWith("asos-aaaaaa-v1"))!;
    expect(win).toContain("+1.230");
    expect(win).toContain("[+0.200, +2.260]");
    expect(win).toContain("+1.100");
    expect(win).toContain("<0.0001");
    expect(win).toMatch(/\byes\s+same\b/);
    const kill = table.find((line) => line.startsWith("asos-bbbbbb-v2"))!;
    expect(kill).toContain("-0.400");
    expect(kill).toMatch(/\bopposite\b/);
    expect(kill).toContain("0.0100");
    const running = table.find((line) => line.startsWith("asos-ffffff-v3"))!;
    expect(running).toMatch(/^asos-ffffff-v3\s+—\s+60\.0\s+running\b/);
  });

  it("aligns every column", () => {
    const header = table[0]!;
    for (const title of ["decision", "sig", "direction", "reason"]) {
      const at = header.indexOf(title);
      for (const line of table.slice(2)) expect(line[at - 1]).toBe(" ");
      for (const line of table.slice(2)) expect(line[at]).not.toBe(" ");
    }
    // Right-aligned numbers end in the same column.
    const lastEnd = header.indexOf("last") + "last".length;
    for (const line of table.slice(2)) expect(line.slice(lastEnd - 4, lastEnd)).toMatch(/\d\.\d$/);
  });

  it("ends with the summary and lists each early stop against a significant full-data effect", () => {
    expect(text).toContain("stopped early:                    4 of 6 (67 %): a decision before the last checkpoint");
    expect(text).toContain("same direction as the full data:  2 of 4 decisions with an effect (50 %)");
    expect(text).toContain("experiment-days saved:            69.5");
    expect(text).toContain(
      "decisions:                        analysing (win): 2, analysing (futility): 1, analysing (srm): 1, paused (kill): 1, running: 1",
    );
    expect(text).toContain("early stops against a significant full-data effect: 1");
    expect(text).toContain(
      "    asos-bbbbbb-v2: paused (kill) at day 5.5 with -0.400 pp [-0.700, -0.100]; full data by day 20.0: +0.200 pp [+0.050, +0.350], p = 0.0100; reason: harm beyond the kill threshold",
    );
    expect(text.endsWith("\n")).toBe(true);
  });

  it("can show effects in the metric's own units", () => {
    const raw = renderReport(
      [row({ key: "asos-x-v1", full: { effect: -0.00652, pValue: 0.168, ci: null, significant: false } })],
      {
        scale: "raw",
      },
    );
    expect(raw).toContain("in the metric's units");
    expect(raw).toContain("-0.00652");
    expect(raw).not.toContain(" pp");
  });
});

describe("renderReport with flags", () => {
  const flagged = rows.map((r) =>
    r.key === "asos-bbbbbb-v2"
      ? {
          ...r,
          flag: {
            applied: { reason: "pause", weights: [1, 0], at: "2027-01-02T10:00:01.250Z" },
            pending: null,
            rollback: { pausedAt: "2027-01-02T10:00:00.800Z", appliedAt: "2027-01-02T10:00:01.250Z" },
          },
        }
      : {
          ...r,
          flag: {
            applied: { reason: "launch", weights: [0.5, 0.5], at: "2027-01-02T09:59:00.004Z" },
            pending: null,
            rollback: null,
          },
        },
  );
  const text = renderReport(flagged, { flags: "unleash" });
  const lines = text.split("\n");
  const header = lines.find((line) => line.startsWith("experiment"))!;

  it("shows each flag's last split and a kill's rollback before the reason", () => {
    expect(header).toMatch(/direction\s+flag\s+applied\s+rollback applied\s+pause→rollback ms\s+reason$/);
    const kill = lines.find((line) => line.startsWith("asos-bbbbbb-v2"))!;
    expect(kill).toMatch(/pause 100\/0\s+10:00:01\.250\s+10:00:01\.250\s+450\s+harm beyond the kill threshold$/);
    const win = lines.find((line) => line.startsWith("asos-aaaaaa-v1"))!;
    expect(win).toMatch(/launch 50\/50\s+09:59:00\.004\s+—\s+—\s+always-valid/);
  });

  it("counts the splits and the rollbacks in the summary", () => {
    expect(text).toContain("flags in unleash:                 last split applied: launch: 5, pause: 1; pending: 0");
    expect(text).toContain("kills rolled back in unleash:     1 of 1; pause → rollback applied p50 450 ms, max 450 ms");
  });

  it("leaves the table as it was without flags", () => {
    expect(renderReport(rows)).not.toContain("rollback");
    expect(renderReport(flagged)).toBe(renderReport(rows));
  });
});

describe("fullDataResult", () => {
  let comparisons: AsosComparison[];
  beforeAll(async () => {
    ({ comparisons } = await loadAsos());
  });
  const find = (key: string) => comparisons.find((c) => c.key === key)!;

  it("runs the two-proportion z-test on the last checkpoint of metric 1", () => {
    // 54a85a treatment 1, day 55.5: control 834090/3320536, treatment 836494/3316730.
    // Reference (Python 3, scipy 1.17.1, scipy.stats.norm): pooled z-test p = 0.0026392027,
    // unpooled p = 0.0026392050; unpooled 95 % Wald interval [0.00035272533, 0.00167338736].
    const full = fullDataResult(find("asos-54a85a-v1"), 1, 0.05);
    expect(full.effect).toBeCloseTo(0.001013056344396468, 12);
    expect(full.pValue!).toBeCloseTo(0.002639, 5);
    expect(full.significant).toBe(true);
    expect(full.ci![0]).toBeCloseTo(0.00035272533, 7);
    expect(full.ci![1]).toBeCloseTo(0.00167338736, 7);
  });

  it("runs Welch's t-test on the last checkpoint of metrics 2–4", () => {
    // 036afc treatment 2, metric 2, day 76.5. Sample variances s² = population variance·n/(n−1).
    // Reference (scipy.stats.ttest_ind_from_stats, equal_var=False): t = −1.3785191, p = 0.1680432;
    // 95 % interval with the Welch–Satterthwaite df (2.1e6): [−0.0158020321, 0.0027521558].
    const full = fullDataResult(find("asos-036afc-v2"), 2, 0.05);
    expect(full.effect).toBeCloseTo(-0.006524938115409995, 9);
    expect(full.pValue!).toBeCloseTo(0.1680432, 5);
    expect(full.significant).toBe(false);
    expect(full.ci![0]).toBeCloseTo(-0.0158020321, 6);
    expect(full.ci![1]).toBeCloseTo(0.0027521558, 6);
  });
});

describe("fullDataResult without data", () => {
  it("refuses a metric the comparison has no checkpoint of", async () => {
    // 3b4300 publishes no variance for metrics 2–4, so only metric 1 is usable.
    const { comparisons } = await loadAsos();
    const comparison = comparisons.find((c) => c.key === "asos-3b4300-v1")!;
    expect(() => fullDataResult(comparison, 2, 0.05)).toThrow(/no checkpoint of metric 2/);
  });
});
