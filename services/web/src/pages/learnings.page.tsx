import { useQuery } from "@tanstack/react-query";
import { useEffect, useId, useState } from "react";
import { Link, useSearchParams } from "react-router";
import { request, withQuery } from "../api";
import { Empty, ErrorState, Loading, PageTitle } from "../components/ui";
import { formatDate, formatEffect, formatInterval, humanize } from "../format";
import type { LearningList, OutcomeList } from "../types";

export function LearningsPage() {
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const outcome = params.get("outcome") ?? "";
  const tag = params.get("tag") ?? "";
  const [text, setText] = useState(q);
  const ids = { q: useId(), outcome: useId(), tag: useId() };

  // Search as you type (debounced); the query lives in the URL so results can be shared.
  useEffect(() => {
    const t = setTimeout(() => {
      if (text.trim() === q) return;
      setParams(
        (prev) => {
          const next = new URLSearchParams(prev);
          if (text.trim()) next.set("q", text.trim());
          else next.delete("q");
          return next;
        },
        { replace: true },
      );
    }, 300);
    return () => clearTimeout(t);
  }, [text, q, setParams]);

  const setFilter = (key: "outcome" | "tag", value: string) =>
    setParams((prev) => {
      const next = new URLSearchParams(prev);
      if (value) next.set(key, value);
      else next.delete(key);
      return next;
    });

  const outcomes = useQuery({
    queryKey: ["outcomes"],
    queryFn: () => request<OutcomeList>("/v1/outcomes?limit=200"),
  });
  const learnings = useQuery({
    queryKey: ["learnings", { q, outcome, tag }],
    queryFn: () => request<LearningList>(withQuery("/v1/learnings", { q, outcome, tag, limit: 50 })),
    placeholderData: (previous) => previous,
  });
  const byId = new Map((outcomes.data?.items ?? []).map((s) => [s.outcome.id, s.outcome]));
  const kindOf = (outcomeId: string) => byId.get(outcomeId)?.spec.signal?.kind;
  const tags = new Set<string>();
  for (const l of learnings.data?.items ?? []) for (const t of l.tags) tags.add(t);
  if (tag) tags.add(tag);

  return (
    <>
      <PageTitle title="Learnings">Learning library</PageTitle>
      <p className="lead">What past experiments taught, searchable; new hypotheses read it too.</p>
      <search className="filters">
        <form onSubmit={(e) => e.preventDefault()} className="filters-form" aria-label="Filter learnings">
          <div className="field field-grow">
            <label htmlFor={ids.q}>Search</label>
            <input
              id={ids.q}
              type="search"
              value={text}
              onChange={(e) => setText(e.target.value)}
              placeholder="e.g. checkout copy, pricing page"
              data-testid="learning-search"
            />
          </div>
          <div className="field">
            <label htmlFor={ids.outcome}>Outcome</label>
            <select id={ids.outcome} value={outcome} onChange={(e) => setFilter("outcome", e.target.value)}>
              <option value="">All outcomes</option>
              {(outcomes.data?.items ?? []).map((s) => (
                <option key={s.outcome.id} value={s.outcome.slug}>
                  {s.outcome.name}
                </option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor={ids.tag}>Tag</label>
            <select id={ids.tag} value={tag} onChange={(e) => setFilter("tag", e.target.value)}>
              <option value="">All tags</option>
              {[...tags].sort().map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
          </div>
        </form>
      </search>
      {learnings.data?.search ? (
        <p className="small text-muted" data-testid="learning-search-mode">
          {learnings.data.search.search === "hybrid"
            ? "Matched by meaning and by words."
            : `Matched by words only: ${learnings.data.search.note.replace(/^full text: /, "")}.`}
        </p>
      ) : null}
      {learnings.isPending ? (
        <Loading label="Searching…" />
      ) : learnings.isError ? (
        <ErrorState error={learnings.error} onRetry={() => learnings.refetch()} />
      ) : learnings.data.items.length === 0 ? (
        <Empty title={q || outcome || tag ? "No learning matches" : "No learnings yet"}>
          <p>
            {q || outcome || tag
              ? "Try other words or clear a filter."
              : "A learning is written when an experiment is shipped, iterated or rolled back at its analysis gate."}
          </p>
        </Empty>
      ) : (
        <ul className="stack" aria-label="Learnings" aria-busy={learnings.isFetching}>
          {learnings.data.items.map((l) => {
            const kind = kindOf(l.outcomeId);
            const o = byId.get(l.outcomeId);
            return (
              <li key={l.id} className="card learning" data-testid="learning-item">
                <p className="learning-statement">{l.statement}</p>
                <p className="small">
                  <span
                    className={`badge badge-${l.decision === "ship" ? "good" : l.decision === "roll_back" ? "danger" : "info"}`}
                  >
                    {humanize(l.decision)}
                  </span>{" "}
                  effect <strong>{formatEffect(l.effect, kind)}</strong>, interval{" "}
                  {formatInterval(l.ciLow, l.ciHigh, kind)}
                </p>
                <p className="small text-muted">
                  {o ? <Link to={`/outcomes/${o.slug}`}>{o.name}</Link> : null}
                  {l.experimentId ? (
                    <>
                      {o ? " · " : ""}
                      <Link to={`/experiments/${l.experimentId}`} data-testid="learning-experiment-link">
                        the experiment
                      </Link>
                    </>
                  ) : null}{" "}
                  · {formatDate(l.createdAt)}
                </p>
                {l.tags.length > 0 ? (
                  <ul className="tags" aria-label="Tags">
                    {l.tags.map((t) => (
                      <li key={t}>
                        <button
                          type="button"
                          className={`tag ${t === tag ? "tag-active" : ""}`}
                          aria-pressed={t === tag}
                          onClick={() => setFilter("tag", t === tag ? "" : t)}
                        >
                          {t}
                        </button>
                      </li>
                    ))}
                  </ul>
                ) : null}
              </li>
            );
          })}
        </ul>
      )}
    </>
  );
}
