/**
 * What several pages say about an outcome: its target in words, the end of its
 * horizon, and its signal series.
 */
import { useQuery } from "@tanstack/react-query";
import { request } from "../api";
import { formatValue } from "../format";
import type { Outcome, OutcomeSeries } from "../types";

export function metricKind(outcome: Outcome | undefined, series?: OutcomeSeries): string | undefined {
  return series?.kind ?? outcome?.spec.signal?.kind;
}

/** "increase to 4.5 %" or "decrease by 10 % (relative)". */
export function targetText(outcome: Outcome): string {
  const t = outcome.spec.target;
  if (!t || typeof t.value !== "number") return "—";
  const verb = t.direction ?? "reach";
  if (t.relative) return `${verb} by ${+(Math.abs(t.value) * 100).toFixed(2)} % (relative)`;
  return `${verb} to ${formatValue(t.value, outcome.spec.signal?.kind)}`;
}

/** The end of the horizon: the series' own, else end_date, else activation + seconds. */
export function horizonEnd(outcome: Outcome, series?: OutcomeSeries): string | null {
  if (series?.horizonEnd) return series.horizonEnd;
  const h = outcome.spec.horizon;
  if (h?.end_date) return h.end_date;
  if (typeof h?.seconds === "number" && outcome.activatedAt) {
    return new Date(Date.parse(outcome.activatedAt) + h.seconds * 1000).toISOString();
  }
  return null;
}

export function useSeries(idOrSlug: string | undefined, enabled = true) {
  return useQuery({
    queryKey: ["outcome", idOrSlug, "series"],
    queryFn: () => request<OutcomeSeries>(`/v1/outcomes/${encodeURIComponent(idOrSlug ?? "")}/series`),
    enabled: enabled && Boolean(idOrSlug),
  });
}
