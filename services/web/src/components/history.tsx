import { useQuery } from "@tanstack/react-query";
import { request, withQuery } from "../api";
import { formatDateTime, humanize } from "../format";
import type { AuditEvent, AuditList } from "../types";
import { ErrorState, Loading } from "./ui";

/** What happened to one subject, newest first (from the audit log). */
export function History({ subjectId, subjectType }: { subjectId: string; subjectType?: string }) {
  const history = useQuery({
    queryKey: ["audit", "subject", subjectId],
    queryFn: () => request<AuditList>(withQuery("/v1/audit", { subjectId, subjectType, limit: 100 })),
  });
  if (history.isPending) return <Loading label="Loading history…" />;
  if (history.isError) return <ErrorState error={history.error} onRetry={() => history.refetch()} />;
  if (history.data.items.length === 0) return <p className="text-muted">No recorded events yet.</p>;
  return (
    <ol className="timeline" data-testid="history">
      {history.data.items.map((e) => (
        <li key={e.id}>
          <time dateTime={e.at}>{formatDateTime(e.at)}</time>
          <span className="timeline-action">{humanize(e.action)}</span>
          <span className="text-muted small">
            {" "}
            by {e.actor?.name ?? "the system"} via {e.channel}
          </span>
          {reasonOf(e) ? <p className="small">“{reasonOf(e)}”</p> : null}
        </li>
      ))}
    </ol>
  );
}

function reasonOf(e: AuditEvent): string | null {
  const after = e.after as { reason?: unknown; decision?: { reason?: unknown } } | null;
  if (typeof after?.reason === "string" && after.reason) return after.reason;
  if (typeof after?.decision?.reason === "string" && after.decision.reason) return after.decision.reason;
  return null;
}
