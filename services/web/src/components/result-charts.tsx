/**
 * The result of an experiment over time: each arm's mean, and the effect
 * (treatment − control) with its always-valid confidence sequence narrowing as
 * data arrives, against a zero line. Both uPlot; a data table for screen readers.
 */
import { useMemo } from "react";
import type uPlot from "uplot";
import { formatDateTime, formatEffect, formatInterval, formatP, formatValue } from "../format";
import type { Analysis, Arm } from "../types";
import { Chart, cssVar, toX } from "./chart";

const PALETTE = ["--series-1", "--series-2", "--series-3", "--series-4"];
const FALLBACK = ["#1d4ed8", "#c2410c", "#7e22ce", "#047857"];

function axes(fmt: (v: number) => string): uPlot.Axis[] {
  const text = cssVar("--text", "#1f2328");
  const grid = cssVar("--border", "#d0d7de");
  return [
    { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
    {
      stroke: text,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid },
      size: 72,
      values: (_u, vals) => vals.map((v) => fmt(v)),
    },
  ];
}

function ArmMeansChart({ analyses, arms, kind }: { analyses: Analysis[]; arms: Arm[]; kind: string | undefined }) {
  const namesKey = (arms.length > 0 ? arms.map((a) => a.name) : Object.keys(analyses[0]?.arms ?? {})).join("|");
  const names = useMemo(() => namesKey.split("|"), [namesKey]);
  const data = useMemo<uPlot.AlignedData>(
    () =>
      [
        analyses.map((a) => toX(a.ts)),
        ...names.map((n) =>
          analyses.map((a) => (typeof a.arms[n]?.mean === "number" ? (a.arms[n]?.mean as number) : null)),
        ),
      ] as uPlot.AlignedData,
    [analyses, names],
  );
  const options = useMemo(() => {
    const fmt = (v: number) => formatValue(v, kind);
    return (width: number): uPlot.Options => ({
      width,
      height: 240,
      scales: { x: { time: true } },
      axes: axes(fmt),
      series: [
        {},
        ...names.map((n, i) => ({
          label: n,
          stroke: cssVar(PALETTE[i % PALETTE.length] ?? "", FALLBACK[i % FALLBACK.length] ?? "#000"),
          width: 2,
          spanGaps: true,
          dash: i === 0 ? undefined : [],
          value: (_u: uPlot, v: number | null) => (v === null ? "—" : fmt(v)),
        })),
      ],
    });
  }, [kind, names]);
  const last = analyses.at(-1);
  const summary = `Mean of ${names.join(" and ")} at each of ${analyses.length} analyses. Latest: ${names
    .map((n) => `${n} ${formatValue(last?.arms[n]?.mean as number | null | undefined, kind)}`)
    .join(", ")}.`;
  return <Chart options={options} data={data} label="Arm means over time" summary={summary} testId="arm-means-chart" />;
}

function EffectChart({ analyses, kind }: { analyses: Analysis[]; kind: string | undefined }) {
  const data = useMemo<uPlot.AlignedData>(() => {
    const xs = analyses.map((a) => toX(a.ts));
    const hi = analyses.map((a) => a.ci?.[1] ?? null);
    const lo = analyses.map((a) => a.ci?.[0] ?? null);
    const effect = analyses.map((a) => a.effect);
    const zero = analyses.map(() => 0);
    return [xs, hi, lo, effect, zero] as uPlot.AlignedData;
  }, [analyses]);
  const options = useMemo(() => {
    const fmt = (v: number) => formatEffect(v, kind);
    const accent = cssVar("--series-2", "#c2410c");
    const band = cssVar("--band", "rgba(194, 65, 12, 0.16)");
    const muted = cssVar("--muted", "#57606a");
    const value = (_u: uPlot, v: number | null) => (v === null ? "—" : fmt(v));
    return (width: number): uPlot.Options => ({
      width,
      height: 240,
      scales: { x: { time: true } },
      axes: axes(fmt),
      bands: [{ series: [1, 2], fill: band }],
      series: [
        {},
        { label: "upper bound", stroke: band, width: 1, spanGaps: true, points: { show: false }, value },
        { label: "lower bound", stroke: band, width: 1, spanGaps: true, points: { show: false }, value },
        { label: "effect", stroke: accent, width: 2, spanGaps: true, value },
        { label: "no effect", stroke: muted, width: 1, dash: [4, 4], points: { show: false }, value },
      ],
    });
  }, [kind]);
  const first = analyses.find((a) => a.ci !== null);
  const last = analyses.at(-1);
  const summary = last
    ? `Effect (treatment − control) at each of ${analyses.length} analyses with its always-valid confidence sequence. ${
        first ? `The interval went from ${formatInterval(first.ci?.[0], first.ci?.[1], kind)} to ` : "Latest interval "
      }${formatInterval(last.ci?.[0], last.ci?.[1], kind)}; latest effect ${formatEffect(last.effect, kind)}, p = ${formatP(
        last.pValue,
      )}.`
    : "No analyses yet.";
  return (
    <Chart
      options={options}
      data={data}
      label="Effect with its confidence sequence"
      summary={summary}
      testId="effect-chart"
    />
  );
}

export function ResultCharts({
  analyses,
  arms,
  kind,
}: {
  analyses: Analysis[];
  arms: Arm[];
  kind: string | undefined;
}) {
  const recent = analyses.slice(-20).reverse();
  const names = arms.map((a) => a.name);
  return (
    <div className="result-charts" data-testid="result-chart" data-points={analyses.length}>
      <div className="chart-pair">
        <section aria-labelledby="arm-means-h">
          <h3 id="arm-means-h">Arm means</h3>
          <ArmMeansChart analyses={analyses} arms={arms} kind={kind} />
        </section>
        <section aria-labelledby="effect-h">
          <h3 id="effect-h">Effect and always-valid interval</h3>
          <EffectChart analyses={analyses} kind={kind} />
        </section>
      </div>
      <details className="data-table">
        <summary>Show the latest analyses as a table</summary>
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Latest analyses, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                {names.map((n) => (
                  <th scope="col" key={n}>
                    {n} (units · mean)
                  </th>
                ))}
                <th scope="col">Effect</th>
                <th scope="col">Interval</th>
                <th scope="col">p</th>
                <th scope="col">Decision</th>
              </tr>
            </thead>
            <tbody>
              {recent.map((a) => (
                <tr key={a.ts}>
                  <td>{formatDateTime(a.ts)}</td>
                  {names.map((n) => (
                    <td key={n}>
                      {a.arms[n]?.units ?? "—"} · {formatValue(a.arms[n]?.mean as number | null | undefined, kind)}
                    </td>
                  ))}
                  <td>{formatEffect(a.effect, kind)}</td>
                  <td>{formatInterval(a.ci?.[0], a.ci?.[1], kind)}</td>
                  <td>{formatP(a.pValue)}</td>
                  <td>{a.decision.action}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </div>
  );
}
