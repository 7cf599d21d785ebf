import { useQuery } from "@tanstack/react-query";
import { request } from "../api";
import { GenericTable } from "../components/generic-table";
import { Empty, ErrorState, Loading, PageTitle, Progress } from "../components/ui";
import { formatUsd } from "../format";
import type { LlmUsage, Spend } from "../types";

function Budget({ title, spend, id }: { title: string; spend: Spend; id: string }) {
  const budget = typeof spend.budgetUsd === "number" && spend.budgetUsd > 0 ? spend.budgetUsd : null;
  const over = budget !== null && spend.spentUsd >= budget;
  return (
    <section className="card budget" aria-labelledby={`budget-${id}-h`} data-testid={`budget-${id}`}>
      <h2 id={`budget-${id}-h`}>{title}</h2>
      <p className="big-number">
        {formatUsd(spend.spentUsd)}
        <span className="text-muted small"> {budget !== null ? `of ${formatUsd(budget)}` : "· no budget set"}</span>
      </p>
      {budget !== null ? (
        <Progress
          label={`${title} spend against budget`}
          value={spend.spentUsd}
          max={budget}
          text={`${Math.round((spend.spentUsd / budget) * 100)} % used`}
        />
      ) : null}
      {over ? <p className="text-danger small">Budget reached: operations fall back to the rules engine.</p> : null}
    </section>
  );
}

export function UsagePage() {
  const usage = useQuery({ queryKey: ["usage"], queryFn: () => request<LlmUsage>("/v1/usage/llm") });
  return (
    <>
      <PageTitle title="LLM usage">LLM usage</PageTitle>
      <p className="lead">
        Spend of the LLM gateway against its budget. Without a key, the rules engine answers at no cost.
      </p>
      {usage.isPending ? (
        <Loading label="Loading usage…" />
      ) : usage.isError ? (
        <ErrorState error={usage.error} onRetry={() => usage.refetch()} />
      ) : (
        <>
          <div className="card-grid card-grid-2">
            <Budget title="This month" id="month" spend={usage.data.month} />
            <Budget title="Today" id="today" spend={usage.data.today} />
          </div>
          <section className="section" aria-labelledby="ops-h">
            <h2 id="ops-h">By operation</h2>
            {usage.data.byOperation.length === 0 ? (
              <Empty title="No LLM calls yet" />
            ) : (
              <GenericTable
                rows={usage.data.byOperation}
                preferred={["operation", "calls", "spentUsd", "cacheHits", "fallbacks"]}
                caption="LLM spend by operation"
                testId="usage-by-operation"
              />
            )}
          </section>
          <section className="section" aria-labelledby="recent-h">
            <h2 id="recent-h">Recent calls</h2>
            {usage.data.recent.length === 0 ? (
              <Empty title="No recent calls" />
            ) : (
              <GenericTable
                rows={usage.data.recent}
                preferred={[
                  "at",
                  "operation",
                  "model",
                  "inputTokens",
                  "outputTokens",
                  "cacheHit",
                  "costUsd",
                  "outcome",
                ]}
                caption="Recent LLM calls, newest first"
                testId="usage-recent"
              />
            )}
          </section>
        </>
      )}
    </>
  );
}
