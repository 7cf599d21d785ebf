import { useQuery } from "@tanstack/react-query";
import { useMemo } from "react";
import { Link } from "react-router";
import { request } from "../api";
import { toX } from "../components/chart";
import { horizonEnd, metricKind, targetText, useSeries } from "../components/outcome-bits";
import { Empty, ErrorState, Loading, PageTitle, Sparkline, StateBadge } from "../components/ui";
import { formatDuration, formatValue, humanize } from "../format";
import type { OutcomeList, OutcomeSummary } from "../types";

const STATE_ORDER = [
  "proposed",
  "approved",
  "building",
  "built",
  "running",
  "paused",
  "analysing",
  "shipped",
  "iterated",
  "rolled_back",
  "rejected",
];

function HorizonLeft({ end }: { end: string | null }) {
  if (!end) return <>—</>;
  const seconds = (Date.parse(end) - Date.now()) / 1000;
  if (!Number.isFinite(seconds)) return <>—</>;
  return seconds >= 0 ? <>{formatDuration(seconds)} left</> : <span className="text-danger">ended</span>;
}

function OutcomeCard({ summary }: { summary: OutcomeSummary }) {
  const { outcome, experimentCounts, pendingGates } = summary;
  const series = useSeries(outcome.slug);
  const kind = metricKind(outcome, series.data);
  const points = series.data?.points ?? [];
  const xs = useMemo(() => points.map((p) => toX(p.ts)), [points]);
  const ys = useMemo(() => points.map((p) => p.value), [points]);
  const current = series.data?.current ?? points.at(-1)?.value ?? null;
  const metric = series.data?.metric ?? outcome.spec.signal?.metric ?? "signal";
  const counts = STATE_ORDER.filter((s) => (experimentCounts[s] ?? 0) > 0).map((s) => [s, experimentCounts[s]]);
  for (const [s, n] of Object.entries(experimentCounts)) {
    if (!STATE_ORDER.includes(s) && n > 0) counts.push([s, n]);
  }
  return (
    <li className="card outcome-card" data-testid="outcome-card" data-slug={outcome.slug}>
      <div className="card-head">
        <h2 className="card-title">
          <Link className="card-link" to={`/outcomes/${outcome.slug}`}>
            {outcome.name}
          </Link>
        </h2>
        <StateBadge state={outcome.state} testId="outcome-state" />
      </div>
      <p className="metric-line">
        <span className="metric-name">{metric}</span>
        <span className="metric-value" data-testid="outcome-current">
          {series.isPending ? "…" : formatValue(current, kind)}
        </span>
      </p>
      {series.isError ? (
        <p className="text-muted small">No signal series: {series.error.message}</p>
      ) : series.isPending ? (
        <div className="sparkline-placeholder" aria-hidden="true" />
      ) : (
        <Sparkline
          xs={xs}
          ys={ys}
          goal={series.data.goal}
          label={`${metric} trend`}
          summary={`${points.length} points; latest ${formatValue(current, kind)}; goal ${formatValue(series.data.goal, kind)}.`}
        />
      )}
      <dl className="facts facts-compact">
        <div className="fact">
          <dt>Target</dt>
          <dd>{targetText(outcome)}</dd>
        </div>
        <div className="fact">
          <dt>Horizon</dt>
          <dd>
            <HorizonLeft end={horizonEnd(outcome, series.data)} />
          </dd>
        </div>
        <div className="fact">
          <dt>Pending gates</dt>
          <dd>
            {pendingGates > 0 ? (
              <Link to="/gates">{pendingGates} waiting</Link>
            ) : (
              <span className="text-muted">none</span>
            )}
          </dd>
        </div>
      </dl>
      {counts.length === 0 ? (
        <p className="text-muted small counts">No experiments yet</p>
      ) : (
        <ul className="counts" aria-label="Experiments by state" data-testid="experiment-counts">
          {counts.map(([s, n]) => (
            <li key={s} className="count-chip">
              <strong>{n}</strong> {humanize(String(s))}
            </li>
          ))}
        </ul>
      )}
    </li>
  );
}

export function OutcomesPage() {
  const outcomes = useQuery({
    queryKey: ["outcomes"],
    queryFn: () => request<OutcomeList>("/v1/outcomes?limit=200"),
  });
  return (
    <>
      <PageTitle
        title="Outcomes"
        actions={
          <Link className="button button-primary" to="/outcomes/new">
            New outcome
          </Link>
        }
      >
        Outcomes
      </PageTitle>
      {outcomes.isPending ? (
        <Loading label="Loading outcomes…" />
      ) : outcomes.isError ? (
        <ErrorState error={outcomes.error} onRetry={() => outcomes.refetch()} />
      ) : outcomes.data.items.length === 0 ? (
        <Empty title="No outcomes yet">
          <p>
            Apply one with the CLI (<code>npx outcome-runtime apply outcome.yaml</code>) or{" "}
            <Link to="/outcomes/new">create one here</Link>.
          </p>
        </Empty>
      ) : (
        <ul className="card-grid" aria-label="Outcomes">
          {outcomes.data.items.map((s) => (
            <OutcomeCard key={s.outcome.id} summary={s} />
          ))}
        </ul>
      )}
    </>
  );
}
