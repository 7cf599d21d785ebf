import { useQuery } from "@tanstack/react-query";
import { Link, useParams } from "react-router";
import { request } from "../api";
import { useExperiment } from "../components/experiment-card";
import { History } from "../components/history";
import { ResultCharts } from "../components/result-charts";
import { SourceHealthTable } from "../components/source-health";
import { Empty, ErrorState, Fact, Loading, PageTitle, Progress, SignificanceMeter, StateBadge } from "../components/ui";
import {
  describeKind,
  formatCount,
  formatDateTime,
  formatDuration,
  formatEffect,
  formatInterval,
  formatLift,
  formatP,
  formatTimeLeft,
  humanize,
} from "../format";
import type { Analysis, Experiment, OutcomeDetail } from "../types";

function predictionText(e: Experiment, kind: string | undefined): string {
  const p = e.prediction;
  if (!p) return "No prediction recorded";
  const size = p.relative
    ? `${+(Math.abs(p.effect) * 100).toFixed(2)} % (relative)`
    : formatEffect(Math.abs(p.effect), kind).replace(/^\+/, "");
  return `${p.direction} by ${size}`;
}

function Guardrails({ analysis }: { analysis: Analysis }) {
  if (analysis.guardrails.length === 0) return <p className="text-muted">No guardrails on this outcome.</p>;
  return (
    <div className="table-wrap">
      <table data-testid="guardrails">
        <caption className="visually-hidden">Guardrail verdicts</caption>
        <thead>
          <tr>
            <th scope="col">Metric</th>
            <th scope="col">Arm</th>
            <th scope="col">Verdict</th>
            <th scope="col">Harm</th>
            <th scope="col">Tolerated</th>
          </tr>
        </thead>
        <tbody>
          {analysis.guardrails.map((g) => {
            const rel = g.relative !== false;
            const pct = (x: number | null | undefined) =>
              typeof x === "number" ? `${+(x * 100).toFixed(2)} ${rel ? "%" : "pp"}` : "—";
            const bad = g.verdict === "harm" || g.verdict === "violated";
            return (
              <tr key={`${g.metric}-${g.arm}`}>
                <td>{g.metric}</td>
                <td>{g.arm}</td>
                <td>
                  <span
                    className={`badge badge-${bad ? "danger" : g.verdict === "ok" || g.verdict === "safe" ? "good" : "muted"}`}
                  >
                    {humanize(String(g.verdict ?? "inconclusive"))}
                  </span>
                </td>
                <td>{pct(g.harm)}</td>
                <td>{pct(g.margin)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

export function ExperimentPage() {
  const { id = "" } = useParams();
  const detail = useExperiment(id);
  const experimentId = detail.data?.experiment.id;
  const analyses = useQuery({
    queryKey: ["experiment", id, "analyses"],
    queryFn: () => request<{ items: Analysis[] }>(`/v1/experiments/${encodeURIComponent(id)}/analyses`),
    enabled: Boolean(detail.data?.experiment.launchedAt) || Boolean(detail.data?.latestAnalysis),
  });
  const outcomeId = detail.data?.experiment.outcomeId;
  const outcome = useQuery({
    queryKey: ["outcome", outcomeId],
    queryFn: () => request<OutcomeDetail>(`/v1/outcomes/${outcomeId}`),
    enabled: Boolean(outcomeId),
  });

  if (detail.isPending) return <Loading label="Loading the experiment…" />;
  if (detail.isError) {
    return (
      <>
        <PageTitle title="Experiment">Experiment</PageTitle>
        <ErrorState error={detail.error} onRetry={() => detail.refetch()} />
      </>
    );
  }
  const { experiment: e, gates, latestAnalysis: a, sources } = detail.data;
  const kind = outcome.data?.outcome.spec.signal?.kind;
  const alpha = e.statsPlan?.alpha ?? 0.05;
  const planned = e.statsPlan?.sequentialPerArm ?? null;
  const pending = gates.filter((g) => g.status === "pending");
  // Only the sequential SRM test (always valid) decides; the chi-square p-value is shown as information.
  const srm = a?.details?.srm;
  const srmAlarm = srm?.sequentialAlarm === true;
  const comparisons = a?.details?.comparisons ?? [];
  const secondary = a?.details?.secondary ?? [];
  // CUPED: the variance reduction of the headline comparison (the first treatment's).
  const varianceReduction = comparisons[0]?.cuped?.varianceReduction ?? null;

  return (
    <>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link to="/">Outcomes</Link> <span aria-hidden="true">/</span>{" "}
        {outcome.data ? (
          <Link to={`/outcomes/${outcome.data.outcome.slug}`}>{outcome.data.outcome.name}</Link>
        ) : (
          <span>…</span>
        )}{" "}
        <span aria-hidden="true">/</span> <span>{e.key}</span>
      </nav>
      <PageTitle title={e.title}>
        {e.title} <StateBadge state={e.state} testId="experiment-state" />
      </PageTitle>

      {e.state === "paused" ? (
        <div className="banner banner-danger" role="status" data-testid="paused-banner">
          <strong>Paused.</strong> {a?.decision.reason ? `${humanize(a.decision.reason)}: ` : ""}
          {a?.decision.detail ?? "Traffic to the treatment is stopped until someone resumes or rolls back."}
        </div>
      ) : e.state === "analysing" ? (
        <div className="banner banner-warn" role="status">
          <strong>Analysing.</strong> {a?.decision.detail ?? "The result waits for a decision."}
        </div>
      ) : null}

      {pending.map((g) => {
        const left = formatTimeLeft(g.dueAt, Date.now());
        return (
          <div key={g.id} className="callout" data-testid="pending-gate">
            <p>
              <strong>{humanize(g.kind)}</strong> waits for a decision by {g.assignees.join(", ") || "the owner"} ·{" "}
              <span className={left.overdue ? "text-danger" : ""}>{left.text}</span>
            </p>
            <Link className="button button-primary" to={`/gates/${g.id}`} data-testid="pending-gate-link">
              Open the gate
            </Link>
          </div>
        );
      })}

      <div className="two-col">
        <section className="section card" aria-labelledby="hyp-h">
          <h2 id="hyp-h">Hypothesis</h2>
          <p>{e.statement}</p>
          <dl className="facts">
            {e.mechanism ? <Fact term="Mechanism">{e.mechanism}</Fact> : null}
            <Fact term="Prediction">{predictionText(e, kind)}</Fact>
            <Fact term="Arms">{e.arms.map((arm) => `${arm.name} ${Math.round(arm.weight * 100)} %`).join(" · ")}</Fact>
            <Fact term="Source">{e.source}</Fact>
            {e.effort || e.risk ? (
              <Fact term="Effort / risk">
                {e.effort ?? "—"} / {e.risk ?? "—"}
              </Fact>
            ) : null}
            <Fact term="Launched">{formatDateTime(e.launchedAt)}</Fact>
            <Fact term="Last polled">
              {formatDateTime(e.polling.lastPolledAt)}
              {e.polling.error ? <span className="text-danger small"> · {e.polling.error.message}</span> : null}
            </Fact>
            {outcome.data?.polling ? (
              <Fact term="Polled every">
                {formatDuration(outcome.data.polling.effectiveSeconds)}
                {outcome.data.polling.note ? (
                  <span className="small text-muted" data-testid="poll-budget-note">
                    {" "}
                    ({outcome.data.polling.note})
                  </span>
                ) : null}
              </Fact>
            ) : null}
          </dl>
        </section>

        <section className="section card" aria-labelledby="result-h">
          <h2 id="result-h">Current result</h2>
          {a === null ? (
            <p className="text-muted">
              {e.launchedAt ? "Waiting for the first analysis." : "Not launched yet: results appear once it runs."}
            </p>
          ) : (
            <>
              <p className="big-number" data-testid="current-effect">
                {formatEffect(a.effect, kind)} <span className="text-muted">({formatLift(a.relativeLift)})</span>
              </p>
              <p>
                Always-valid interval{" "}
                <strong data-testid="current-interval">{formatInterval(a.ci?.[0], a.ci?.[1], kind)}</strong>
              </p>
              <SignificanceMeter pValue={a.pValue} alpha={alpha} />
              <dl className="facts">
                <Fact term="Metric">
                  {outcome.data?.outcome.spec.signal?.metric ?? "—"}{" "}
                  <span className="small text-muted" data-testid="metric-kind">
                    ({describeKind(kind)}
                    {kind === "ratio" ? "; effects are differences of ratios, tested with the delta method" : ""})
                  </span>
                </Fact>
                <Fact term="Decision">
                  <strong>{humanize(a.decision.action)}</strong>
                  {a.decision.reason ? ` · ${humanize(a.decision.reason)}` : ""}
                  {a.decision.detail ? <span className="small text-muted"> — {a.decision.detail}</span> : null}
                </Fact>
                {varianceReduction !== null ? (
                  <Fact term="Variance reduction (CUPED)">
                    <span data-testid="variance-reduction">{(varianceReduction * 100).toFixed(1)} %</span>{" "}
                    <span className="small text-muted">
                      less variance than the unadjusted comparison, from the pre-exposure covariate
                      {typeof a.details?.plannedPerArm === "number" &&
                      typeof a.details?.unadjustedPlannedPerArm === "number" ? (
                        <span data-testid="cuped-planned">
                          ; planned sample {formatCount(Math.ceil(a.details.plannedPerArm))} per arm instead of{" "}
                          {formatCount(Math.ceil(a.details.unadjustedPlannedPerArm))}
                        </span>
                      ) : null}
                    </span>
                  </Fact>
                ) : null}
                <Fact term="Sample ratio">
                  <span data-testid="srm-status" className={srmAlarm ? "text-danger" : "text-good"}>
                    {srmAlarm ? "⚠ mismatch" : "✓ as configured"}
                  </span>{" "}
                  <span className="small text-muted">
                    (sequential SRM p = {formatP(srm?.sequentialPValue ?? null)}; chi-square p = {formatP(a.srmPValue)},
                    information only)
                  </span>
                </Fact>
                <Fact term="Running for">
                  {typeof a.details?.elapsedSeconds === "number" ? formatDuration(a.details.elapsedSeconds) : "—"}
                </Fact>
                <Fact term="Analysed">{formatDateTime(a.ts)}</Fact>
              </dl>
              {comparisons.length > 1 ? (
                <table className="table" data-testid="comparisons">
                  <caption className="small text-muted">
                    {comparisons.length} treatments share α: each interval is at α/{comparisons.length}, and a win or
                    loss is declared on the Holm-adjusted p-value.
                  </caption>
                  <thead>
                    <tr>
                      <th scope="col">Treatment</th>
                      <th scope="col">Effect</th>
                      <th scope="col">Always-valid interval</th>
                      <th scope="col">p</th>
                      <th scope="col">Adjusted p (Holm)</th>
                    </tr>
                  </thead>
                  <tbody>
                    {comparisons.map((c) => (
                      <tr key={c.arm}>
                        <th scope="row">{c.arm}</th>
                        <td>
                          {formatEffect(c.effect ?? null, kind)}{" "}
                          <span className="text-muted">({formatLift(c.relativeLift ?? null)})</span>
                        </td>
                        <td>{formatInterval(c.ci?.[0], c.ci?.[1], kind)}</td>
                        <td>{formatP(c.pValue ?? null)}</td>
                        <td>{formatP(c.adjustedPValue ?? null)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              ) : null}
              {secondary.length > 0 ? (
                <table className="table" data-testid="secondary-metrics">
                  <caption className="small text-muted">
                    Secondary metrics: reported for context with their always-valid intervals; they never pause, ship or
                    stop the experiment.
                  </caption>
                  <thead>
                    <tr>
                      <th scope="col">Secondary metric</th>
                      <th scope="col">Treatment</th>
                      <th scope="col">Effect</th>
                      <th scope="col">Always-valid interval</th>
                      <th scope="col">p</th>
                    </tr>
                  </thead>
                  <tbody>
                    {secondary.map((m) => (
                      <tr key={`${m.metric}:${m.arm}`}>
                        <th scope="row">
                          {m.metric}{" "}
                          <span className="small text-muted">
                            (secondary{m.kind === "ratio" ? `, ${describeKind(m.kind)}` : ""})
                          </span>
                        </th>
                        <td>{m.arm}</td>
                        <td>
                          {formatEffect(m.effect ?? null, m.kind)}{" "}
                          <span className="text-muted">({formatLift(m.relativeLift ?? null)})</span>
                        </td>
                        <td>{formatInterval(m.ci?.[0], m.ci?.[1], m.kind)}</td>
                        <td>{formatP(m.pValue ?? null)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              ) : null}
            </>
          )}
        </section>
      </div>

      {a !== null ? (
        <section className="section" aria-labelledby="sample-h">
          <h2 id="sample-h">Sample per arm</h2>
          <div className="progress-list" data-testid="sample-progress">
            {e.arms.map((arm) => {
              const units = Number(a.arms[arm.name]?.units ?? 0);
              return (
                <Progress
                  key={arm.name}
                  label={arm.name}
                  value={units}
                  max={planned ?? units}
                  text={
                    planned ? `${formatCount(units)} of ${formatCount(planned)} planned` : `${formatCount(units)} units`
                  }
                />
              );
            })}
          </div>
          {planned ? (
            <p className="small text-muted">
              Planned minimum per arm for the always-valid test (α = {alpha}, power {e.statsPlan?.power ?? "—"}
              {e.statsPlan?.mde ? `, sized for ${formatEffect(e.statsPlan.mde, kind)}` : ""}). Peeking is safe: the
              interval stays valid at every look.
            </p>
          ) : null}
        </section>
      ) : null}

      {a !== null ? (
        <section className="section" aria-labelledby="guard-h">
          <h2 id="guard-h">Guardrails</h2>
          <Guardrails analysis={a} />
        </section>
      ) : null}

      {sources.length > 0 ? (
        <section className="section" aria-labelledby="sources-h">
          <h2 id="sources-h">Sources</h2>
          <SourceHealthTable sources={sources} caption="Each metric's source and how its reads are going" />
        </section>
      ) : null}

      <section className="section" aria-labelledby="chart-h">
        <h2 id="chart-h">Result over time</h2>
        {!analyses.isFetched && analyses.isPending && (e.launchedAt || a) ? (
          <Loading label="Loading analyses…" />
        ) : analyses.isError ? (
          <ErrorState error={analyses.error} onRetry={() => analyses.refetch()} />
        ) : !analyses.data || analyses.data.items.length === 0 ? (
          <Empty title="No analyses yet">
            <p>Every poll of the signal adds one; the charts fill in as data arrives.</p>
          </Empty>
        ) : (
          <ResultCharts analyses={analyses.data.items} arms={e.arms} kind={kind} />
        )}
      </section>

      {e.build ? (
        <section className="section" aria-labelledby="build-h">
          <h2 id="build-h">Build</h2>
          <p>{e.build.summary}</p>
          <dl className="facts">
            <Fact term="Reported by">
              {e.build.reportedBy} · {formatDateTime(e.build.reportedAt)}
            </Fact>
            {e.build.pullRequestUrl ? (
              <Fact term="Pull request">
                <a href={e.build.pullRequestUrl} rel="noreferrer noopener" target="_blank">
                  {e.build.pullRequestUrl}
                </a>
              </Fact>
            ) : null}
            {e.build.flagKey ? (
              <Fact term="Flag">
                <code>{e.build.flagKey}</code>
              </Fact>
            ) : null}
            {e.build.changedPaths.length > 0 ? (
              <Fact term="Changed paths">
                <code>{e.build.changedPaths.join(", ")}</code>
              </Fact>
            ) : null}
          </dl>
        </section>
      ) : null}

      <section className="section" aria-labelledby="history-h">
        <h2 id="history-h">History</h2>
        {experimentId ? <History subjectId={experimentId} subjectType="experiment" /> : null}
        {gates.length > 0 ? (
          <>
            <h3>Gates</h3>
            <ul className="plain-list">
              {gates.map((g) => (
                <li key={g.id}>
                  <Link to={`/gates/${g.id}`}>{humanize(g.kind)}</Link> <StateBadge state={g.status} />{" "}
                  {g.decision ? (
                    <span className="small text-muted">
                      {humanize(g.decision.decision)} by {g.decision.decidedBy} via {g.decision.channel},{" "}
                      {formatDateTime(g.decision.decidedAt)}
                    </span>
                  ) : (
                    <span className="small text-muted">due {formatDateTime(g.dueAt)}</span>
                  )}
                </li>
              ))}
            </ul>
          </>
        ) : null}
      </section>
    </>
  );
}
