/**
 * Small shared pieces: page title, loading / error / empty states, state
 * badges, the significance meter, progress bars and the sparkline.
 */
import { type ReactNode, useEffect, useMemo } from "react";
import type uPlot from "uplot";
import { errorMessage } from "../api";
import { formatP, humanize } from "../format";
import { Chart, cssVar } from "./chart";

/** The page's one h1, and the document title. */
export function PageTitle({ children, title, actions }: { children: ReactNode; title: string; actions?: ReactNode }) {
  useEffect(() => {
    document.title = `${title} · Outcome Runtime`;
  }, [title]);
  return (
    <div className="page-title">
      <h1>{children}</h1>
      {actions ? <div className="page-actions">{actions}</div> : null}
    </div>
  );
}

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div className="state state-loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

export function ErrorState({
  error,
  onRetry,
  title = "Something went wrong",
}: {
  error: unknown;
  onRetry?: () => void;
  title?: string;
}) {
  return (
    <div className="state state-error" role="alert">
      <p className="state-title">{title}</p>
      <p>{errorMessage(error)}</p>
      {onRetry ? (
        <button type="button" className="button" onClick={onRetry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="state state-empty">
      <p className="state-title">{title}</p>
      {children}
    </div>
  );
}

const TONES: Record<string, string> = {
  active: "good",
  achieved: "good",
  approved: "good",
  running: "good",
  shipped: "good",
  built: "info",
  building: "info",
  proposed: "info",
  draft: "muted",
  pending: "warn",
  analysing: "warn",
  paused: "danger",
  rolled_back: "danger",
  rejected: "danger",
  missed: "danger",
  expired: "danger",
  abandoned: "muted",
  iterated: "info",
};

/** A state as a coloured badge (the colour repeats what the text says). */
export function StateBadge({ state, testId }: { state: string; testId?: string }) {
  return (
    <span className={`badge badge-${TONES[state] ?? "muted"}`} data-testid={testId} data-state={state}>
      {humanize(state)}
    </span>
  );
}

/**
 * Evidence against "no effect": the always-valid p-value against alpha, on a log
 * scale (p = 1 → empty, p = alpha → full: significant).
 */
export function SignificanceMeter({ pValue, alpha }: { pValue: number | null | undefined; alpha: number }) {
  const p = typeof pValue === "number" && Number.isFinite(pValue) ? Math.min(1, Math.max(pValue, 1e-12)) : null;
  const fraction = p === null ? 0 : Math.min(1, Math.log(p) / Math.log(alpha));
  const significant = p !== null && p <= alpha;
  const text =
    p === null
      ? "no p-value yet"
      : `always-valid p = ${formatP(p)} against α = ${alpha}: ${significant ? "significant" : "not significant yet"}`;
  return (
    <div className="meter-wrap" data-testid="significance-meter" data-significant={significant}>
      <meter className="visually-hidden" min={0} max={1} value={fraction} aria-label="Significance">
        {text}
      </meter>
      <div className={`meter-bar ${significant ? "meter-significant" : ""}`} aria-hidden="true">
        <span className="meter-fill" style={{ width: `${fraction * 100}%` }} />
      </div>
      <p className="meter-text">
        {p === null ? (
          "No p-value yet"
        ) : (
          <>
            p = <strong>{formatP(p)}</strong> vs α = {alpha} ·{" "}
            <span className={significant ? "text-good" : "text-muted"}>
              {significant ? "significant" : "not significant yet"}
            </span>
          </>
        )}
      </p>
    </div>
  );
}

/** A labelled progress bar (e.g. sample per arm vs the planned minimum). */
export function Progress({ label, value, max, text }: { label: string; value: number; max: number; text: string }) {
  const fraction = max > 0 ? Math.min(1, value / max) : 0;
  return (
    <div className="progress-row">
      <div className="progress-label">
        <span>{label}</span>
        <span className="text-muted">{text}</span>
      </div>
      <div
        className={`progress ${fraction >= 1 ? "progress-done" : ""}`}
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(fraction * 100)}
        aria-valuetext={text}
      >
        <span className="progress-fill" style={{ width: `${fraction * 100}%` }} />
      </div>
    </div>
  );
}

/** A small line of recent values (uPlot, no axes). */
export function Sparkline({
  xs,
  ys,
  goal,
  label,
  summary,
}: {
  xs: number[];
  ys: (number | null)[];
  goal?: number | null;
  label: string;
  summary: string;
}) {
  const data = useMemo<uPlot.AlignedData>(() => {
    const cols: (number | null)[][] = [ys];
    if (goal !== null && goal !== undefined) cols.push(xs.map(() => goal));
    return [xs, ...cols] as uPlot.AlignedData;
  }, [xs, ys, goal]);
  const options = useMemo(() => {
    const line = cssVar("--accent", "#1d4ed8");
    const goalColor = cssVar("--good", "#15803d");
    return (width: number): uPlot.Options => ({
      width,
      height: 56,
      legend: { show: false },
      cursor: { show: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      axes: [{ show: false }, { show: false }],
      scales: { x: { time: true } },
      padding: [4, 2, 4, 2],
      series: [
        {},
        { stroke: line, width: 2, fill: `${line}1a`, spanGaps: true, points: { show: false } },
        ...(goal !== null && goal !== undefined
          ? [{ stroke: goalColor, width: 1, dash: [4, 4], points: { show: false } }]
          : []),
      ],
    });
  }, [goal]);
  if (xs.length < 2) return <p className="sparkline-empty text-muted">Not enough data for a trend yet</p>;
  return <Chart options={options} data={data} label={label} summary={summary} className="sparkline" caption={false} />;
}

/** Definition list row helper. */
export function Fact({ term, children }: { term: string; children: ReactNode }) {
  return (
    <div className="fact">
      <dt>{term}</dt>
      <dd>{children}</dd>
    </div>
  );
}
