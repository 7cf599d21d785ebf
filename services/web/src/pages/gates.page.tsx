import { Link } from "react-router";
import { Empty, ErrorState, Loading, PageTitle } from "../components/ui";
import { useNow } from "../components/use-now";
import { formatDateTime, formatTimeLeft, humanize } from "../format";
import { useInbox } from "../layout";
import type { Gate } from "../types";

const KIND_TEXT: Record<string, string> = {
  portfolio_review: "Review the proposed hypotheses",
  launch_approval: "Approve a launch",
  analysis_review: "Decide on a result",
  agent_request: "Answer an agent's question",
};

function GateRow({ gate, now }: { gate: Gate; now: number }) {
  const left = formatTimeLeft(gate.dueAt, now);
  const soon = !left.overdue && left.seconds < 0.25 * gate.slaSeconds;
  const trigger = typeof gate.context.reason === "string" ? humanize(gate.context.reason) : null;
  return (
    <li
      className={`card gate-item ${left.overdue ? "gate-overdue" : ""}`}
      data-testid="gate-item"
      data-kind={gate.kind}
    >
      <div className="card-head">
        <h2 className="card-title">
          <Link className="card-link" to={`/gates/${gate.id}`}>
            {KIND_TEXT[gate.kind] ?? humanize(gate.kind)}
          </Link>
        </h2>
        <span
          className={`sla ${left.overdue ? "sla-overdue" : soon ? "sla-soon" : ""}`}
          data-testid="sla-countdown"
          data-overdue={left.overdue}
        >
          {left.overdue ? "⚠ " : ""}
          {left.text}
        </span>
      </div>
      <p className="small text-muted">
        {humanize(gate.kind)}
        {trigger ? ` · ${trigger}` : ""} · opened {formatDateTime(gate.createdAt)} · due {formatDateTime(gate.dueAt)}
        {gate.escalatedTo ? ` · escalated to ${gate.escalatedTo}` : ""}
      </p>
    </li>
  );
}

export function GatesPage() {
  const inbox = useInbox();
  const now = useNow();
  const items = [...(inbox.data?.items ?? [])].sort((a, b) => Date.parse(a.dueAt) - Date.parse(b.dueAt));
  return (
    <>
      <PageTitle title="Gates">Your gates</PageTitle>
      <p className="lead">Decisions waiting for you, the most urgent first.</p>
      {inbox.isPending ? (
        <Loading label="Loading your gates…" />
      ) : inbox.isError ? (
        <ErrorState error={inbox.error} onRetry={() => inbox.refetch()} />
      ) : items.length === 0 ? (
        <Empty title="Nothing waits for you">
          <p>New gates appear here as soon as they open.</p>
        </Empty>
      ) : (
        <ul className="stack" aria-label="Pending gates">
          {items.map((g) => (
            <GateRow key={g.id} gate={g} now={now} />
          ))}
        </ul>
      )}
    </>
  );
}
