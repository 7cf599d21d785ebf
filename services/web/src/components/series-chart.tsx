/**
 * An outcome's own signal over time, with its goal, its baseline and the end
 * of its horizon: on the outcome's page and on its confirm-achieved gate.
 */
import { useMemo } from "react";
import type uPlot from "uplot";
import { formatDateTime, formatValue } from "../format";
import type { OutcomeSeries } from "../types";
import { Chart, cssVar, toX, verticalMarker } from "./chart";

/** The series chart; `end` is the horizon's end (ISO 8601), drawn as a marker. */
export function SeriesChart({ series, end }: { series: OutcomeSeries; end: string | null }) {
  const kind = series.kind;
  const data = useMemo<uPlot.AlignedData>(() => {
    const xs = series.points.map((p) => toX(p.ts));
    const ys: (number | null)[] = series.points.map((p) => p.value);
    const endX = end ? toX(end) : null;
    if (endX !== null && Number.isFinite(endX) && (xs.length === 0 || endX > (xs.at(-1) ?? 0))) {
      xs.push(endX);
      ys.push(null);
    }
    const goal = xs.map(() => series.goal);
    const baseline = xs.map(() => series.baseline);
    return [xs, ys, goal, baseline] as uPlot.AlignedData;
  }, [series, end]);

  const options = useMemo(() => {
    const accent = cssVar("--accent", "#1d4ed8");
    const good = cssVar("--good", "#15803d");
    const muted = cssVar("--muted", "#57606a");
    const text = cssVar("--text", "#1f2328");
    const grid = cssVar("--border", "#d0d7de");
    const fmt = (v: number) => formatValue(v, kind);
    const endX = end ? toX(end) : null;
    return (width: number): uPlot.Options => ({
      width,
      height: 280,
      scales: { x: { time: true } },
      axes: [
        { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        {
          stroke: text,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid },
          size: 70,
          values: (_u, vals) => vals.map((v) => fmt(v)),
        },
      ],
      series: [
        {},
        {
          label: series.metric,
          stroke: accent,
          width: 2,
          spanGaps: true,
          value: (_u, v) => (v === null ? "—" : fmt(v)),
        },
        {
          label: "goal",
          stroke: good,
          width: 1.5,
          dash: [6, 4],
          points: { show: false },
          value: (_u, v) => (v === null ? "—" : fmt(v)),
        },
        {
          label: "baseline",
          stroke: muted,
          width: 1,
          dash: [2, 4],
          points: { show: false },
          value: (_u, v) => (v === null ? "—" : fmt(v)),
        },
      ],
      plugins: endX !== null && Number.isFinite(endX) ? [verticalMarker(endX, muted, "horizon")] : [],
    });
  }, [series.metric, kind, end]);

  const last = series.points.at(-1);
  const summary =
    series.points.length === 0
      ? `No values of ${series.metric} yet.`
      : `${series.metric}: ${series.points.length} values from ${formatDateTime(series.points[0]?.ts)} to ${formatDateTime(
          last?.ts,
        )}; current ${formatValue(series.current ?? last?.value, kind)}, goal ${formatValue(series.goal, kind)}, baseline ${formatValue(
          series.baseline,
          kind,
        )}${end ? `; the horizon ends ${formatDateTime(end)}` : ""}.`;
  return (
    <Chart options={options} data={data} label={`${series.metric} over time`} summary={summary} testId="signal-chart" />
  );
}
