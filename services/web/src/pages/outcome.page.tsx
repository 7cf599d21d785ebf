import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useParams } from "react-router";
import { request, withQuery } from "../api";
import { ExperimentCard } from "../components/experiment-card";
import { horizonEnd, metricKind, targetText, useSeries } from "../components/outcome-bits";
import { SeriesChart } from "../components/series-chart";
import { SourceHealthTable } from "../components/source-health";
import { Empty, ErrorState, Fact, Loading, PageTitle, StateBadge } from "../components/ui";
import { formatDateTime, formatDuration, formatValue, humanize } from "../format";
import type { ExperimentList, GateList, Outcome, OutcomeDetail, RevisionList } from "../types";

/** Page sizes of the outcome's lists (each is a paged endpoint of its own; "Load more" follows the cursor). */
const EXPERIMENTS_PAGE = 50;
const GATES_PAGE = 20;
const REVISIONS_PAGE = 20;

/** A "Load more" button for a paged list, or nothing on its last page. */
function LoadMore({
  list,
  testId,
}: {
  list: { hasNextPage: boolean; isFetchingNextPage: boolean; fetchNextPage: () => unknown };
  testId: string;
}) {
  if (!list.hasNextPage) return null;
  return (
    <button
      type="button"
      className="button load-more"
      onClick={() => list.fetchNextPage()}
      disabled={list.isFetchingNextPage}
      data-testid={testId}
    >
      {list.isFetchingNextPage ? "Loading…" : "Load more"}
    </button>
  );
}

export function OutcomePage() {
  const { id = "" } = useParams();
  const queryClient = useQueryClient();
  const detail = useQuery({
    queryKey: ["outcome", id],
    queryFn: () => request<OutcomeDetail>(`/v1/outcomes/${encodeURIComponent(id)}`),
  });
  const series = useSeries(id);
  const activate = useMutation({
    mutationFn: () => request(`/v1/outcomes/${encodeURIComponent(id)}/activate`, { method: "POST", body: {} }),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["outcome"] });
      void queryClient.invalidateQueries({ queryKey: ["outcomes"] });
      void queryClient.invalidateQueries({ queryKey: ["gates"] });
    },
  });

  const reopen = useMutation({
    mutationFn: () => request(`/v1/outcomes/${encodeURIComponent(id)}/reopen`, { method: "POST", body: {} }),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["outcome"] });
      void queryClient.invalidateQueries({ queryKey: ["outcomes"] });
    },
  });

  if (detail.isPending) return <Loading label="Loading the outcome…" />;
  if (detail.isError) {
    return (
      <>
        <PageTitle title="Outcome">Outcome</PageTitle>
        <ErrorState error={detail.error} onRetry={() => detail.refetch()} />
      </>
    );
  }
  const { outcome, pendingGates, polling } = detail.data;
  const kind = metricKind(outcome, series.data);
  const end = horizonEnd(outcome, series.data);

  return (
    <>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link to="/">Outcomes</Link> <span aria-hidden="true">/</span> <span>{outcome.slug}</span>
      </nav>
      <PageTitle
        title={outcome.name}
        actions={
          <>
            {outcome.state === "draft" ? (
              <button
                type="button"
                className="button button-primary"
                onClick={() => activate.mutate()}
                disabled={activate.isPending}
              >
                {activate.isPending ? "Activating…" : "Activate"}
              </button>
            ) : null}
            {outcome.state === "achieved" ? (
              <button
                type="button"
                className="button"
                onClick={() => reopen.mutate()}
                disabled={reopen.isPending}
                title="The outcome becomes active again: its signal is polled and its horizon counts"
              >
                {reopen.isPending ? "Reopening…" : "Reopen"}
              </button>
            ) : null}
            <Link className="button" to={`/outcomes/${outcome.slug}/edit`}>
              Edit
            </Link>
          </>
        }
      >
        {outcome.name} <StateBadge state={outcome.state} testId="outcome-state" />
      </PageTitle>
      {reopen.isError ? <ErrorState error={reopen.error} title="The outcome was not reopened" /> : null}
      {activate.isError ? (
        <ErrorState error={activate.error} title="The outcome was not activated" />
      ) : activate.isSuccess ? (
        <p className="notice" role="status">
          Activated. The first portfolio of hypotheses waits for review in <Link to="/gates">Gates</Link>.
        </p>
      ) : null}

      <dl className="facts facts-row">
        <Fact term="Owner">{outcome.owner}</Fact>
        <Fact term="Target">{targetText(outcome)}</Fact>
        <Fact term="Current">{formatValue(series.data?.current, kind)}</Fact>
        <Fact term="Horizon">
          {end
            ? `${formatDateTime(end)} (${Date.parse(end) > Date.now() ? `${formatDuration((Date.parse(end) - Date.now()) / 1000)} left` : "ended"})`
            : "—"}
        </Fact>
        <Fact term="Polled every">
          {formatDuration(polling.effectiveSeconds)}
          {polling.note ? <span className="small text-muted"> ({polling.note})</span> : null}
        </Fact>
      </dl>

      <section className="section" aria-labelledby="signal-h">
        <h2 id="signal-h">Signal</h2>
        {series.isPending ? (
          <Loading label="Loading the signal…" />
        ) : series.isError ? (
          <ErrorState error={series.error} onRetry={() => series.refetch()} title="The signal could not be loaded" />
        ) : series.data.points.length === 0 ? (
          <Empty title="No values yet">
            <p>The signal is polled once the outcome is active; values appear here as they arrive.</p>
          </Empty>
        ) : (
          <SeriesChart series={series.data} end={end} />
        )}
      </section>

      {detail.data.sources.length > 0 ? (
        <section className="section" aria-labelledby="sources-h">
          <h2 id="sources-h">Sources</h2>
          <SourceHealthTable
            sources={detail.data.sources}
            caption="Each metric's source across the running experiments, and the outcome's own signal"
          />
        </section>
      ) : null}

      {pendingGates > 0 ? <PendingGates outcomeId={outcome.id} count={pendingGates} /> : null}
      <Experiments outcome={outcome} kind={kind} />
      <Revisions outcome={outcome} />
    </>
  );
}

/** The outcome's pending gates, newest first, from `GET /v1/gates?outcomeId=…&status=pending`. */
function PendingGates({ outcomeId, count }: { outcomeId: string; count: number }) {
  const gates = useInfiniteQuery({
    queryKey: ["outcome", outcomeId, "gates", "pending"],
    queryFn: ({ pageParam }) =>
      request<GateList>(withQuery("/v1/gates", { outcomeId, status: "pending", limit: GATES_PAGE, cursor: pageParam })),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const items = gates.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <section className="section" aria-labelledby="gates-h">
      <h2 id="gates-h">
        Waiting for a decision <span className="small text-muted">({count})</span>
      </h2>
      {gates.isPending ? (
        <Loading label="Loading the gates…" />
      ) : gates.isError ? (
        <ErrorState error={gates.error} onRetry={() => gates.refetch()} />
      ) : (
        <>
          <ul className="plain-list" data-testid="outcome-pending-gates">
            {items.map((g) => (
              <li key={g.id} data-testid="outcome-pending-gate" data-kind={g.kind}>
                <Link to={`/gates/${g.id}`}>{humanize(g.kind)}</Link>{" "}
                <span className="small text-muted">due {formatDateTime(g.dueAt)}</span>
              </li>
            ))}
          </ul>
          <LoadMore list={gates} testId="gates-load-more" />
        </>
      )}
    </section>
  );
}

/** The outcome's experiments, oldest first, from `GET /v1/outcomes/:id/experiments`. */
function Experiments({ outcome, kind }: { outcome: Outcome; kind: string | undefined }) {
  const experiments = useInfiniteQuery({
    queryKey: ["outcome", outcome.id, "experiments"],
    queryFn: ({ pageParam }) =>
      request<ExperimentList>(
        withQuery(`/v1/outcomes/${outcome.id}/experiments`, { limit: EXPERIMENTS_PAGE, cursor: pageParam }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const items = experiments.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <section className="section" aria-labelledby="experiments-h">
      <h2 id="experiments-h">Experiments</h2>
      {experiments.isPending ? (
        <Loading label="Loading experiments…" />
      ) : experiments.isError ? (
        <ErrorState error={experiments.error} onRetry={() => experiments.refetch()} />
      ) : items.length === 0 ? (
        <Empty title="No experiments yet">
          <p>
            {outcome.state === "draft"
              ? "Activate the outcome to get a first portfolio of hypotheses."
              : "Hypotheses appear here once proposed."}
          </p>
        </Empty>
      ) : (
        <>
          <ul className="card-grid">
            {items.map((e) => (
              <ExperimentCard key={e.id} experiment={e} kind={kind} />
            ))}
          </ul>
          <LoadMore list={experiments} testId="experiments-load-more" />
        </>
      )}
    </section>
  );
}

/** The outcome's revisions, newest first, from `GET /v1/outcomes/:id/revisions`. */
function Revisions({ outcome }: { outcome: Outcome }) {
  const revisions = useInfiniteQuery({
    queryKey: ["outcome", outcome.id, "revisions"],
    queryFn: ({ pageParam }) =>
      request<RevisionList>(
        withQuery(`/v1/outcomes/${outcome.id}/revisions`, { limit: REVISIONS_PAGE, cursor: pageParam }),
      ),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const items = revisions.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <section className="section" aria-labelledby="revisions-h">
      <h2 id="revisions-h">Revisions</h2>
      {revisions.isPending ? (
        <Loading label="Loading the revisions…" />
      ) : revisions.isError ? (
        <ErrorState error={revisions.error} onRetry={() => revisions.refetch()} />
      ) : (
        <>
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">Revisions of {outcome.slug}, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Revision</th>
                  <th scope="col">By</th>
                  <th scope="col">When</th>
                  <th scope="col">Content hash</th>
                </tr>
              </thead>
              <tbody>
                {items.map((r) => (
                  <tr key={r.revision} data-testid="outcome-revision">
                    <td>{r.revision}</td>
                    <td>{r.createdBy}</td>
                    <td>{formatDateTime(r.createdAt)}</td>
                    <td>
                      <code>{r.contentHash.slice(0, 12)}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <LoadMore list={revisions} testId="revisions-load-more" />
        </>
      )}
    </section>
  );
}
