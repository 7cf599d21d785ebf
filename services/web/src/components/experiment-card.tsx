import { useQuery } from "@tanstack/react-query";
import { Link } from "react-router";
import { request } from "../api";
import { formatEffect, formatInterval, formatLift } from "../format";
import type { Experiment, ExperimentDetail } from "../types";
import { SignificanceMeter, StateBadge } from "./ui";

const LAUNCHED = new Set(["running", "paused", "analysing", "shipped", "rolled_back", "iterated"]);

export function useExperiment(id: string | undefined) {
  return useQuery({
    queryKey: ["experiment", id],
    queryFn: () => request<ExperimentDetail>(`/v1/experiments/${encodeURIComponent(id ?? "")}`),
    enabled: Boolean(id),
  });
}

/** One experiment in a list: title, state, effect with its always-valid interval, significance. */
export function ExperimentCard({ experiment, kind }: { experiment: Experiment; kind: string | undefined }) {
  const launched = LAUNCHED.has(experiment.state) || experiment.launchedAt !== null;
  const detail = useQuery({
    queryKey: ["experiment", experiment.id],
    queryFn: () => request<ExperimentDetail>(`/v1/experiments/${experiment.id}`),
    enabled: launched,
  });
  const a = detail.data?.latestAnalysis ?? null;
  const alpha = experiment.statsPlan?.alpha ?? 0.05;
  return (
    <li className="card experiment-card" data-testid="experiment-card" data-key={experiment.key}>
      <div className="card-head">
        <h3 className="card-title">
          <Link className="card-link" to={`/experiments/${experiment.id}`}>
            {experiment.title}
          </Link>
        </h3>
        <StateBadge state={experiment.state} testId="experiment-state" />
      </div>
      <p className="small text-muted clamp">{experiment.statement}</p>
      {!launched ? (
        <p className="small text-muted">Not launched yet: no results.</p>
      ) : detail.isPending ? (
        <p className="small text-muted">Loading result…</p>
      ) : detail.isError ? (
        <p className="small text-danger">Result unavailable: {detail.error.message}</p>
      ) : a === null ? (
        <p className="small text-muted">Launched; waiting for the first analysis.</p>
      ) : (
        <>
          <p className="effect-line">
            <span className="effect-value">{formatEffect(a.effect, kind)}</span>
            <span className="text-muted"> ({formatLift(a.relativeLift)})</span>
            <span className="small text-muted"> · interval {formatInterval(a.ci?.[0], a.ci?.[1], kind)}</span>
          </p>
          <SignificanceMeter pValue={a.pValue} alpha={alpha} />
        </>
      )}
    </li>
  );
}
