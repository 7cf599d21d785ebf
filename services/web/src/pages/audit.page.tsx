import { useInfiniteQuery } from "@tanstack/react-query";
import { type FormEvent, useId, useState } from "react";
import { Link, useSearchParams } from "react-router";
import { request, withQuery } from "../api";
import { Empty, ErrorState, Loading, PageTitle } from "../components/ui";
import { formatDateTime } from "../format";
import type { AuditEvent, AuditList } from "../types";

const CHANNELS = ["web", "api", "email", "mcp", "cli", "worker", "system"];
const SUBJECTS = ["outcome", "experiment", "gate", "api_key", "workspace"];
const PAGE = 50;

function subjectLink(e: AuditEvent) {
  const short = e.subjectId.length > 12 ? `${e.subjectId.slice(0, 8)}…` : e.subjectId;
  const to =
    e.subjectType === "outcome"
      ? `/outcomes/${e.subjectId}`
      : e.subjectType === "experiment"
        ? `/experiments/${e.subjectId}`
        : e.subjectType === "gate"
          ? `/gates/${e.subjectId}`
          : null;
  return to ? (
    <Link to={to}>
      {e.subjectType} {short}
    </Link>
  ) : (
    <span>
      {e.subjectType} {short}
    </span>
  );
}

export function AuditPage() {
  const [params, setParams] = useSearchParams();
  const filters = {
    actor: params.get("actor") ?? "",
    channel: params.get("channel") ?? "",
    action: params.get("action") ?? "",
    subjectType: params.get("subjectType") ?? "",
  };
  const [draft, setDraft] = useState(filters);
  const ids = { actor: useId(), channel: useId(), action: useId(), subjectType: useId() };

  const audit = useInfiniteQuery({
    queryKey: ["audit", "log", filters],
    queryFn: ({ pageParam }) =>
      request<AuditList>(withQuery("/v1/audit", { ...filters, limit: PAGE, cursor: pageParam })),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });

  const apply = (event: FormEvent) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of Object.entries(draft)) if (v.trim()) next.set(k, v.trim());
    setParams(next);
  };
  const items = audit.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <>
      <PageTitle title="Audit log">Audit log</PageTitle>
      <p className="lead">Who did what, when, and through which channel.</p>
      <search className="filters">
        <form className="filters-form" onSubmit={apply} aria-label="Filter the audit log">
          <div className="field">
            <label htmlFor={ids.actor}>Actor</label>
            <input
              id={ids.actor}
              value={draft.actor}
              onChange={(e) => setDraft({ ...draft, actor: e.target.value })}
              placeholder="name or email"
            />
          </div>
          <div className="field">
            <label htmlFor={ids.channel}>Channel</label>
            <select
              id={ids.channel}
              value={draft.channel}
              onChange={(e) => setDraft({ ...draft, channel: e.target.value })}
            >
              <option value="">Any</option>
              {CHANNELS.map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor={ids.action}>Action</label>
            <input
              id={ids.action}
              value={draft.action}
              onChange={(e) => setDraft({ ...draft, action: e.target.value })}
              placeholder="e.g. gate.decided"
            />
          </div>
          <div className="field">
            <label htmlFor={ids.subjectType}>Subject</label>
            <select
              id={ids.subjectType}
              value={draft.subjectType}
              onChange={(e) => setDraft({ ...draft, subjectType: e.target.value })}
            >
              <option value="">Any</option>
              {SUBJECTS.map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </select>
          </div>
          <div className="field field-actions">
            <button type="submit" className="button button-primary">
              Filter
            </button>
            <button
              type="button"
              className="button"
              onClick={() => {
                setDraft({ actor: "", channel: "", action: "", subjectType: "" });
                setParams(new URLSearchParams());
              }}
            >
              Clear
            </button>
          </div>
        </form>
      </search>
      {audit.isPending ? (
        <Loading label="Loading the audit log…" />
      ) : audit.isError ? (
        <ErrorState error={audit.error} onRetry={() => audit.refetch()} />
      ) : items.length === 0 ? (
        <Empty title="No events match" />
      ) : (
        <>
          <div className="table-wrap">
            <table data-testid="audit-table">
              <caption className="visually-hidden">Audit events, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Channel</th>
                  <th scope="col">Action</th>
                  <th scope="col">Subject</th>
                </tr>
              </thead>
              <tbody>
                {items.map((e) => (
                  <tr key={e.id} data-testid="audit-row">
                    <td>
                      <time dateTime={e.at}>{formatDateTime(e.at)}</time>
                    </td>
                    <td>
                      {e.actor ? (
                        <>
                          {e.actor.name} <span className="text-muted small">({e.actor.role})</span>
                        </>
                      ) : (
                        <span className="text-muted">system</span>
                      )}
                    </td>
                    <td>
                      <span className="badge badge-muted">{e.channel}</span>
                    </td>
                    <td>
                      <code>{e.action}</code>
                    </td>
                    <td>{subjectLink(e)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {audit.hasNextPage ? (
            <button
              type="button"
              className="button load-more"
              onClick={() => audit.fetchNextPage()}
              disabled={audit.isFetchingNextPage}
              data-testid="audit-load-more"
            >
              {audit.isFetchingNextPage ? "Loading…" : "Load more"}
            </button>
          ) : (
            <p className="text-muted small">End of the log.</p>
          )}
        </>
      )}
    </>
  );
}
