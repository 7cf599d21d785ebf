import { formatDateTime, humanize } from "../format";
import type { SourceHealth } from "../types";

const BADGE: Record<SourceHealth["status"], string> = {
  ok: "good",
  failing: "danger",
  throttled: "warn",
  waiting: "muted",
};

/**
 * Each metric's source: its connector, the last successful read, the last
 * error (the source's own message) and whether its rate limit holds polls back.
 * On an outcome, `experiments` counts the running experiments read through it.
 */
export function SourceHealthTable({ sources, caption }: { sources: readonly SourceHealth[]; caption: string }) {
  if (sources.length === 0) return <p className="text-muted">No source has been read yet.</p>;
  const perOutcome = sources.some((s) => s.experiments !== undefined);
  return (
    <div className="table-wrap">
      <table data-testid="source-health">
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Metric</th>
            <th scope="col">Source</th>
            <th scope="col">Status</th>
            <th scope="col">Last read</th>
            <th scope="col">Last error</th>
            {perOutcome ? <th scope="col">Failing experiments</th> : null}
          </tr>
        </thead>
        <tbody>
          {sources.map((s) => (
            <tr key={`${s.role}:${s.metric}`} data-status={s.status}>
              <td>
                {s.metric} <span className="small text-muted">({humanize(s.role)})</span>
              </td>
              <td>
                {s.connector ?? "—"}
                {s.source ? <div className="small text-muted">{s.source}</div> : null}
              </td>
              <td>
                <span className={`badge badge-${BADGE[s.status]}`}>{humanize(s.status)}</span>
                {s.status === "throttled" ? (
                  <div className="small" data-testid="throttle">
                    Rate limit: next read after {formatDateTime(s.throttledUntil)}, from {formatDateTime(s.polledUntil)}{" "}
                    on (nothing is lost).
                    {s.throttleNote ? <div className="text-muted">{s.throttleNote}</div> : null}
                  </div>
                ) : null}
              </td>
              <td>{formatDateTime(s.lastReadAt)}</td>
              <td>
                {s.lastError ? (
                  <>
                    <span className={s.status === "failing" ? "text-danger" : "text-muted"}>{s.lastError.message}</span>
                    <div className="small text-muted">
                      {s.lastError.code} · {formatDateTime(s.lastError.at)}
                    </div>
                  </>
                ) : (
                  "—"
                )}
              </td>
              {perOutcome ? (
                <td>{s.experiments === undefined ? "—" : `${s.failingExperiments ?? 0} of ${s.experiments}`}</td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
