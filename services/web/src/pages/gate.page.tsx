import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useId, useState } from "react";
import { Link, useParams } from "react-router";
import { ApiError, errorMessage, request } from "../api";
import { SeriesChart } from "../components/series-chart";
import { ErrorState, Fact, Loading, PageTitle, Progress, SignificanceMeter, StateBadge } from "../components/ui";
import { useNow } from "../components/use-now";
import {
  formatCount,
  formatDateTime,
  formatDuration,
  formatEffect,
  formatInterval,
  formatLift,
  formatP,
  formatTimeLeft,
  formatValue,
  humanize,
} from "../format";
import type { ContextPackage, Experiment, Gate, GateDecision, GateDetail } from "../types";

function DecisionRecord({ decision, testId = "decision-record" }: { decision: GateDecision; testId?: string }) {
  return (
    <dl className="facts decision-record" data-testid={testId}>
      <Fact term="Decision">
        <strong>{humanize(decision.decision)}</strong>
      </Fact>
      <Fact term="By">{decision.decidedBy}</Fact>
      <Fact term="When">{formatDateTime(decision.decidedAt)}</Fact>
      <Fact term="Channel">{decision.channel}</Fact>
      <Fact term="Reason">
        {decision.reason ? `“${decision.reason}”` : <span className="text-muted">none given</span>}
      </Fact>
    </dl>
  );
}

function PortfolioContext({
  pkg,
  excluded,
  toggle,
  decidable,
}: {
  pkg: Extract<ContextPackage, { kind: "portfolio_review" }>;
  excluded: Set<string>;
  toggle: (id: string) => void;
  decidable: boolean;
}) {
  return (
    <ul className="stack">
      {pkg.hypotheses.map((h) => (
        <li key={h.id} className="card hypothesis">
          <div className="card-head">
            <h3 className="card-title">{h.title}</h3>
            <StateBadge state={h.state} />
          </div>
          <p>{h.statement}</p>
          <dl className="facts facts-compact">
            <Fact term="Prediction">
              {h.prediction
                ? `${h.prediction.direction} by ${
                    h.prediction.relative
                      ? `${+(Math.abs(h.prediction.effect) * 100).toFixed(2)} %`
                      : String(h.prediction.effect)
                  }`
                : "—"}
            </Fact>
            <Fact term="Effort / risk">
              {h.effort ?? "—"} / {h.risk ?? "—"}
            </Fact>
            <Fact term="Source">{h.source}</Fact>
            {h.touchedPaths.length > 0 ? (
              <Fact term="Paths">
                <code>{h.touchedPaths.join(", ")}</code>
              </Fact>
            ) : null}
          </dl>
          {decidable ? (
            <label className="checkbox">
              <input
                type="checkbox"
                checked={!excluded.has(h.id)}
                onChange={() => toggle(h.id)}
                data-testid="hypothesis-include"
              />
              Approve this hypothesis when approving the portfolio
            </label>
          ) : null}
        </li>
      ))}
    </ul>
  );
}

function AnalysisContext({ pkg }: { pkg: Extract<ContextPackage, { kind: "analysis_review" }> }) {
  const a = pkg.analysis;
  const kind = a?.metricKind;
  return (
    <>
      <p>
        Opened because: <strong>{humanize(pkg.trigger.reason)}</strong> ({humanize(pkg.trigger.action)})
        {pkg.trigger.detail ? ` — ${pkg.trigger.detail}` : ""}
      </p>
      {a === null ? (
        <p className="text-muted">No analysis is stored yet.</p>
      ) : (
        <>
          <p className="big-number">
            {formatEffect(a.effect, kind)} <span className="text-muted">({formatLift(a.relativeLift)})</span>
          </p>
          <p>
            {a.metric}: always-valid interval <strong>{formatInterval(a.ciLow, a.ciHigh, kind)}</strong>
          </p>
          <SignificanceMeter pValue={a.pValue} alpha={a.alpha} />
          <dl className="facts">
            <Fact term="Sample ratio">
              <span className={a.srm.alarm ? "text-danger" : "text-good"}>
                {a.srm.alarm ? "⚠ mismatch" : "✓ as configured"}
              </span>{" "}
              <span className="small text-muted">(p = {formatP(a.srm.pValue)})</span>
            </Fact>
            <Fact term="Duration">{a.durationSeconds !== null ? formatDuration(a.durationSeconds) : "—"}</Fact>
            <Fact term="Analysed">{formatDateTime(a.ts)}</Fact>
          </dl>
          <h3>Arms</h3>
          <div className="progress-list">
            {a.arms.map((arm) => (
              <Progress
                key={arm.name}
                label={`${arm.name}: mean ${formatValue(arm.mean, kind)}`}
                value={arm.units}
                max={Math.max(...a.arms.map((x) => x.units), 1)}
                text={`${formatCount(arm.units)} units`}
              />
            ))}
          </div>
          {a.guardrails.length > 0 ? (
            <>
              <h3>Guardrails</h3>
              <ul className="plain-list">
                {a.guardrails.map((g) => (
                  <li key={`${g.metric}-${g.arm}`}>
                    {g.metric} ({g.arm}): <strong>{humanize(g.verdict)}</strong>
                    {g.harm !== null ? ` · harm ${+(g.harm * 100).toFixed(2)} ${g.relative ? "%" : "pp"}` : ""} ·
                    tolerated {+(g.margin * 100).toFixed(2)} {g.relative ? "%" : "pp"}
                  </li>
                ))}
              </ul>
            </>
          ) : null}
        </>
      )}
      <p>
        <Link to={`/experiments/${pkg.experiment.id}`}>See the experiment and its result chart</Link>
      </p>
    </>
  );
}

function AchievementContext({ pkg }: { pkg: Extract<ContextPackage, { kind: "achievement_review" }> }) {
  const e = pkg.evidence;
  const kind = pkg.metricKind;
  const series = {
    metric: pkg.outcome.target.split(":")[0] ?? "signal",
    kind,
    points: [...pkg.series],
    goal: e?.goal ?? null,
    baseline: null,
    horizonEnd: null,
    current: pkg.series.at(-1)?.value ?? null,
  };
  return (
    <>
      {e ? (
        <>
          <p data-testid="achievement-evidence">
            The signal has stayed past the target for <strong>{formatDuration(e.sustainSeconds)}</strong>{" "}
            (target.sustain): latest <strong>{formatValue(e.latest, kind)}</strong>, goal {formatValue(e.goal, kind)}.
          </p>
          <dl className="facts">
            <Fact term="Mean of the window">
              {formatValue(e.mean, kind)} over {e.points} points
            </Fact>
            <Fact term={`One-sided ${Math.round(e.confidence * 100)} % bound`}>
              {formatValue(e.bound, kind)} ({e.direction === "increase" ? "lower" : "upper"} bound, past the goal)
            </Fact>
            <Fact term="Window">
              {formatDateTime(e.windowStart)} – {formatDateTime(e.windowEnd)}
            </Fact>
          </dl>
        </>
      ) : (
        <p>The signal has stayed past the target for its target.sustain window.</p>
      )}
      <SeriesChart series={series} end={null} />
      <h3>Shipped since activation</h3>
      {pkg.shipped.length === 0 ? (
        <p className="text-muted" data-testid="achievement-shipped">
          None: the level moved without a shipped experiment. Check the data before you confirm.
        </p>
      ) : (
        <ul className="plain-list" data-testid="achievement-shipped">
          {pkg.shipped.map((x) => (
            <li key={x.id}>
              <Link to={`/experiments/${x.id}`}>{x.title}</Link> · {formatLift(x.relativeLift)} · shipped{" "}
              {formatDateTime(x.shippedAt)}
            </li>
          ))}
        </ul>
      )}
      <p className="small text-muted">
        Confirming marks the outcome achieved (it can be reopened); “Not yet” keeps it active and asks again once the
        target has held for another window.
      </p>
    </>
  );
}

function ContextView(props: {
  pkg: ContextPackage;
  excluded: Set<string>;
  toggle: (id: string) => void;
  decidable: boolean;
}) {
  const { pkg } = props;
  return (
    <section className="section card" aria-labelledby="context-h" data-testid="context-package" data-kind={pkg.kind}>
      <h2 id="context-h">What you are deciding</h2>
      <p className="small text-muted">
        Outcome <Link to={`/outcomes/${pkg.outcome.slug}`}>{pkg.outcome.name}</Link> · {pkg.outcome.target} · owner{" "}
        {pkg.outcome.owner}
      </p>
      {"experiment" in pkg ? (
        <p>
          Experiment <Link to={`/experiments/${pkg.experiment.id}`}>{pkg.experiment.title}</Link>{" "}
          <StateBadge state={pkg.experiment.state} />
        </p>
      ) : null}
      {pkg.kind === "portfolio_review" ? (
        <PortfolioContext pkg={pkg} excluded={props.excluded} toggle={props.toggle} decidable={props.decidable} />
      ) : null}
      {pkg.kind === "launch_approval" ? (
        <>
          <p>{pkg.experiment.statement}</p>
          {pkg.build ? (
            <dl className="facts">
              <Fact term="Build">{pkg.build.summary}</Fact>
              <Fact term="Reported by">
                {pkg.build.reportedBy} · {formatDateTime(pkg.build.reportedAt)}
              </Fact>
              {pkg.build.pullRequestUrl ? (
                <Fact term="Pull request">
                  <a href={pkg.build.pullRequestUrl} target="_blank" rel="noreferrer noopener">
                    {pkg.build.pullRequestUrl}
                  </a>
                </Fact>
              ) : null}
              {pkg.build.flagKey ? (
                <Fact term="Flag">
                  <code>{pkg.build.flagKey}</code>
                </Fact>
              ) : null}
              <Fact term="Changed paths">
                {pkg.build.changedPaths.length > 0 ? <code>{pkg.build.changedPaths.join(", ")}</code> : "none reported"}
              </Fact>
            </dl>
          ) : (
            <p className="text-muted">No build report.</p>
          )}
          <Fact term="Arms">{pkg.arms.map((a) => `${a.name} ${Math.round(a.weight * 100)} %`).join(" · ")}</Fact>
        </>
      ) : null}
      {pkg.kind === "analysis_review" ? <AnalysisContext pkg={pkg} /> : null}
      {pkg.kind === "achievement_review" ? <AchievementContext pkg={pkg} /> : null}
      {pkg.kind === "agent_request" ? (
        <>
          <p>
            <strong>{pkg.askedBy}</strong> asks:
          </p>
          <blockquote className="question">{pkg.question}</blockquote>
        </>
      ) : null}
    </section>
  );
}

interface DecisionResult {
  gate: Gate;
  experiments: Experiment[];
  learningId: string | null;
}

function Confirmation({ result }: { result: DecisionResult }) {
  const d = result.gate.decision;
  return (
    <section className="section card" aria-labelledby="done-h" role="status" data-testid="decision-confirmation">
      <h2 id="done-h">Decision recorded</h2>
      {d ? <DecisionRecord decision={d} testId="decision-result" /> : null}
      {result.learningId ? (
        <p>
          A learning was written to the <Link to="/learnings">learning library</Link>.
        </p>
      ) : null}
      <p>
        <Link to="/gates">Back to your gates</Link>
      </p>
    </section>
  );
}

function DecisionForm({
  detail,
  excluded,
  onDecided,
}: {
  detail: GateDetail;
  excluded: Set<string>;
  onDecided: (result: DecisionResult) => void;
}) {
  const queryClient = useQueryClient();
  const [reason, setReason] = useState("");
  const reasonId = useId();
  const decide = useMutation({
    mutationFn: (decision: string) => {
      const hypotheses =
        detail.gate.kind === "portfolio_review" && decision === "approve" && excluded.size > 0
          ? Object.fromEntries([...excluded].map((id) => [id, "reject"]))
          : undefined;
      return request<DecisionResult>(`/v1/gates/${detail.gate.id}/decision`, {
        method: "POST",
        body: { decision, ...(reason.trim() ? { reason: reason.trim() } : {}), ...(hypotheses ? { hypotheses } : {}) },
      });
    },
    onSuccess: onDecided,
    onSettled: () => {
      for (const key of ["gate", "gates", "experiment", "outcome", "outcomes", "learnings", "audit"]) {
        void queryClient.invalidateQueries({ queryKey: [key] });
      }
    },
  });

  const conflict = decide.error instanceof ApiError && decide.error.code === "gate_already_decided";
  const winner = conflict
    ? ((decide.error as ApiError).problem.details?.decision as GateDecision | undefined)
    : undefined;
  return (
    <section className="section card" aria-labelledby="decide-h">
      <h2 id="decide-h">Your decision</h2>
      <label htmlFor={reasonId}>Reason (recorded in the audit log and the learning)</label>
      <textarea
        id={reasonId}
        value={reason}
        onChange={(e) => setReason(e.target.value)}
        rows={3}
        maxLength={2000}
        data-testid="gate-reason"
      />
      <div className="option-list">
        {detail.options.map((o) => (
          <div key={o.decision} className="option">
            <button
              type="button"
              className={`button button-${o.tone === "primary" ? "primary" : o.tone === "danger" ? "danger" : "secondary"}`}
              onClick={() => decide.mutate(o.decision)}
              disabled={decide.isPending}
              data-testid={`gate-decision-${o.decision}`}
              data-decision={o.decision}
              aria-describedby={`${reasonId}-${o.decision}`}
            >
              {decide.isPending && decide.variables === o.decision ? "Recording…" : o.label}
            </button>
            <p id={`${reasonId}-${o.decision}`} className="small text-muted">
              {o.effect}
            </p>
          </div>
        ))}
      </div>
      {decide.isError ? (
        <div className="state state-error" role="alert" data-testid="decision-error">
          <p className="state-title">{conflict ? "Someone decided first" : "The decision was not recorded"}</p>
          <p>{errorMessage(decide.error)}</p>
          {winner ? <DecisionRecord decision={winner} /> : null}
        </div>
      ) : null}
    </section>
  );
}

export function GatePage() {
  const { id = "" } = useParams();
  const now = useNow();
  const [excluded, setExcluded] = useState<Set<string>>(new Set());
  const [decided, setDecided] = useState<DecisionResult | null>(null);
  // Another gate's page starts with no confirmation and no exclusions.
  // biome-ignore lint/correctness/useExhaustiveDependencies: resets on a change of gate on purpose
  useEffect(() => {
    setDecided(null);
    setExcluded(new Set());
  }, [id]);
  const detail = useQuery({
    queryKey: ["gate", id],
    queryFn: () => request<GateDetail>(`/v1/gates/${encodeURIComponent(id)}`),
  });
  if (detail.isPending) return <Loading label="Loading the gate…" />;
  if (detail.isError) {
    return (
      <>
        <PageTitle title="Gate">Gate</PageTitle>
        <ErrorState error={detail.error} onRetry={() => detail.refetch()} />
      </>
    );
  }
  const { gate } = detail.data;
  const left = formatTimeLeft(gate.dueAt, now);
  const decidable = gate.status === "pending" && detail.data.options.length > 0;
  const toggle = (hid: string) =>
    setExcluded((prev) => {
      const next = new Set(prev);
      if (next.has(hid)) next.delete(hid);
      else next.add(hid);
      return next;
    });
  return (
    <>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link to="/gates">Gates</Link> <span aria-hidden="true">/</span> <span>{humanize(gate.kind)}</span>
      </nav>
      <PageTitle title={humanize(gate.kind)}>
        {humanize(gate.kind)} <StateBadge state={gate.status} testId="gate-status" />
      </PageTitle>
      <dl className="facts facts-row">
        <Fact term="Assignees">{gate.assignees.join(", ") || "the owner"}</Fact>
        {gate.backup ? <Fact term="Backup">{gate.backup}</Fact> : null}
        <Fact term="Due">
          {formatDateTime(gate.dueAt)}
          {gate.status === "pending" ? (
            <span className={left.overdue ? "text-danger" : "text-muted"} data-testid="sla-countdown">
              {" "}
              ({left.text})
            </span>
          ) : null}
        </Fact>
        {gate.escalatedTo ? <Fact term="Escalated to">{gate.escalatedTo}</Fact> : null}
        <Fact term="Opened">{formatDateTime(gate.createdAt)}</Fact>
      </dl>
      <ContextView pkg={detail.data.contextPackage} excluded={excluded} toggle={toggle} decidable={decidable} />
      {decided ? (
        <Confirmation result={decided} />
      ) : gate.decision ? (
        <section className="section card" aria-labelledby="record-h">
          <h2 id="record-h">Decided</h2>
          <DecisionRecord decision={gate.decision} />
        </section>
      ) : decidable ? (
        <DecisionForm detail={detail.data} excluded={excluded} onDecided={setDecided} />
      ) : (
        <p className="notice">This gate is {humanize(gate.status)} and takes no decision now.</p>
      )}
    </>
  );
}
