/**
 * How numbers, times and intervals are written on every page: effects of
 * proportions in percentage points, relative lifts in %, p-values to four
 * decimals (or "< 0.0001").
 */

const isNum = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

/** An always-valid or fixed p-value: 0.0031, 0.214, < 0.0001. */
export function formatP(p: number | null | undefined): string {
  if (!isNum(p)) return "—";
  if (p < 0.0001) return "< 0.0001";
  if (p < 0.01) return p.toFixed(4);
  return p.toFixed(3);
}

/** A value of the metric: a proportion as a percentage, a mean or a ratio as a number. */
export function formatValue(x: number | null | undefined, kind: string | undefined): string {
  if (!isNum(x)) return "—";
  if (kind === "proportion") return `${trim(x * 100, 2)} %`;
  return formatNumber(x);
}

/**
 * The kind of a metric in words: "proportion: share of units that converted", "mean: average value per
 * unit", "ratio: numerator / denominator per unit" (a ratio of two sums over the units, e.g. revenue per
 * session with users randomised, analysed with the delta method). An unknown kind is shown as it is.
 */
export function describeKind(kind: string | undefined): string {
  switch (kind) {
    case "proportion":
      return "proportion: share of units that converted";
    case "mean":
      return "mean: average value per unit";
    case "ratio":
      return "ratio: numerator / denominator per unit";
    default:
      return kind ?? "—";
  }
}

/** A plain number with up to 4 significant decimals and thousands separators. */
export function formatNumber(x: number | null | undefined): string {
  if (!isNum(x)) return "—";
  const abs = Math.abs(x);
  const digits = abs >= 1000 ? 0 : abs >= 100 ? 1 : abs >= 1 ? 2 : 4;
  return x.toLocaleString("en-US", { maximumFractionDigits: digits });
}

/** An absolute effect (treatment − control): percentage points for a proportion. */
export function formatEffect(x: number | null | undefined, kind: string | undefined): string {
  if (!isNum(x)) return "—";
  const sign = x > 0 ? "+" : x < 0 ? "−" : "";
  if (kind === "proportion") return `${sign}${trim(Math.abs(x) * 100, 2)} pp`;
  return `${sign}${formatNumber(Math.abs(x))}`;
}

/** A relative lift (a fraction) as a percentage with a sign. */
export function formatLift(x: number | null | undefined): string {
  if (!isNum(x)) return "—";
  const sign = x > 0 ? "+" : x < 0 ? "−" : "";
  return `${sign}${trim(Math.abs(x) * 100, 1)} %`;
}

/** An interval of effects, e.g. "[−0.40 pp, +1.20 pp]". */
export function formatInterval(
  lo: number | null | undefined,
  hi: number | null | undefined,
  kind: string | undefined,
): string {
  if (!isNum(lo) || !isNum(hi)) return "not yet";
  return `[${formatEffect(lo, kind)}, ${formatEffect(hi, kind)}]`;
}

/** Money in US dollars; cents below a dollar keep four decimals. */
export function formatUsd(x: number | null | undefined): string {
  if (!isNum(x)) return "—";
  return `$${x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: Math.abs(x) < 1 ? 4 : 2 })}`;
}

/** An integer count with separators. */
export function formatCount(x: number | null | undefined): string {
  if (!isNum(x)) return "—";
  return Math.round(x).toLocaleString("en-US");
}

/** A duration in seconds, in the two largest units: "3 d 4 h", "12 min". */
export function formatDuration(seconds: number): string {
  const s = Math.abs(Math.round(seconds));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return h > 0 ? `${d} d ${h} h` : `${d} d`;
  if (h > 0) return m > 0 ? `${h} h ${m} min` : `${h} h`;
  if (m > 0) return `${m} min`;
  return `${s} s`;
}

/** Time left until an instant: "2 h 5 min left", or "overdue by 3 h". */
export function formatTimeLeft(iso: string, now: number): { text: string; overdue: boolean; seconds: number } {
  const seconds = (Date.parse(iso) - now) / 1000;
  if (!Number.isFinite(seconds)) return { text: "—", overdue: false, seconds: 0 };
  if (seconds < 0) return { text: `overdue by ${formatDuration(-seconds)}`, overdue: true, seconds };
  return { text: `${formatDuration(seconds)} left`, overdue: false, seconds };
}

/** A timestamp in the reader's locale, to the minute. */
export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** A date without time. */
export function formatDate(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleDateString(undefined, { dateStyle: "medium" });
}

/** A state or code for reading: "rolled_back" → "rolled back". */
export function humanize(s: string): string {
  return s.replaceAll("_", " ");
}

function trim(x: number, digits: number): string {
  return Number(x.toFixed(digits)).toLocaleString("en-US", { maximumFractionDigits: digits });
}
