/**
 * Number, time and link formatting for gate emails and decision pages. Pure
 * functions over plain values; inputs follow the units of the context package
 * (fractions, seconds, ISO 8601 strings). `null` renders as "n/a". Output is
 * locale-independent (en-US digits, UTC times) so every reader sees the same text.
 */
import type { Prediction } from "@outcome-runtime/core";

const NA = "n/a";

/** Fixed decimals with an explicit sign ("+1.20", "-0.35"); no sign when it rounds to zero. */
function signed(value: number, decimals: number): string {
  const magnitude = Math.abs(value).toFixed(decimals);
  if (Number(magnitude) === 0) return magnitude;
  return `${value < 0 ? "-" : "+"}${magnitude}`;
}

/** Two decimals below 1, one below 100, none above: 0.35, 5.2, 120. */
function percentDecimals(percent: number): number {
  const abs = Math.abs(percent);
  return abs < 1 ? 2 : abs < 100 ? 1 : 0;
}

/** A relative change as a signed percent: `0.052` → `"+5.2 %"`, `-0.004` → `"-0.40 %"`. */
export function formatRelative(fraction: number | null): string {
  if (fraction === null) return NA;
  const percent = fraction * 100;
  return `${signed(percent, percentDecimals(percent))} %`;
}

/** A share or level as an unsigned percent: `0.5` → `"50 %"`, `0.0342` → `"3.42 %"`. */
export function formatShare(fraction: number | null): string {
  if (fraction === null) return NA;
  const percent = fraction * 100;
  const decimals = Number.isInteger(Math.round(percent * 100) / 100) ? 0 : 2;
  return `${percent.toFixed(decimals)} %`;
}

/** An absolute difference of proportions in percentage points: `0.012` → `"+1.20 pp"`. */
export function formatPercentagePoints(fraction: number | null): string {
  if (fraction === null) return NA;
  return `${signed(fraction * 100, 2)} pp`;
}

/** A plain number with up to 4 significant digits and thousands separators: `1234.5` → `"1,235"`. */
function formatNumber(value: number | null): string {
  if (value === null) return NA;
  return new Intl.NumberFormat("en-US", { maximumSignificantDigits: 4 }).format(value);
}

/** A plain number with an explicit sign: `0.42` → `"+0.42"`. */
export function formatSignedNumber(value: number | null): string {
  if (value === null) return NA;
  const text = formatNumber(Math.abs(value));
  if (Number(text.replaceAll(",", "")) === 0) return text;
  return `${value < 0 ? "-" : "+"}${text}`;
}

/** A count of units: `12345` → `"12,345"`. */
export function formatCount(value: number | null): string {
  if (value === null) return NA;
  return new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 }).format(value);
}

/**
 * An absolute effect (treatment − control) in the metric's units: percentage
 * points for a proportion (`0.012` → `"+1.20 pp"`), a signed number for a mean
 * or a ratio (a difference of ratios).
 */
export function formatEffect(value: number | null, metricKind: "proportion" | "mean" | "ratio"): string {
  return metricKind === "proportion" ? formatPercentagePoints(value) : formatSignedNumber(value);
}

/** An interval of effects: `"[+0.20 pp, +2.10 pp]"`; "n/a" when a bound is missing. */
export function formatInterval(
  low: number | null,
  high: number | null,
  metricKind: "proportion" | "mean" | "ratio",
): string {
  if (low === null || high === null) return NA;
  return `[${formatEffect(low, metricKind)}, ${formatEffect(high, metricKind)}]`;
}

/** An arm's mean: a percent for a proportion (`0.0342` → `"3.42 %"`), a plain number for a mean or a ratio. */
export function formatMean(value: number | null, metricKind: "proportion" | "mean" | "ratio"): string {
  if (value === null) return NA;
  return metricKind === "proportion" ? `${(value * 100).toFixed(2)} %` : formatNumber(value);
}

/** A p-value with two significant digits: `0.0031` → `"0.0031"`, below 0.0001 → `"< 0.0001"`. */
export function formatPValue(p: number | null): string {
  if (p === null) return NA;
  if (p < 0.0001) return "< 0.0001";
  return String(Number(p.toPrecision(2)));
}

/** The confidence level of a test at `alpha`: `0.05` → `"95 %"`. */
export function formatConfidence(alpha: number): string {
  return formatShare(1 - alpha);
}

/** A duration in seconds, two units at most: `273600` → `"3 d 4 h"`, `5400` → `"1 h 30 min"`, `45` → `"45 s"`. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return NA;
  const total = Math.max(0, Math.floor(seconds));
  const days = Math.floor(total / 86_400);
  const hours = Math.floor((total % 86_400) / 3_600);
  const minutes = Math.floor((total % 3_600) / 60);
  const pair = (major: string, minor: string | null) => (minor === null ? major : `${major} ${minor}`);
  if (days > 0) return pair(`${days} d`, hours > 0 ? `${hours} h` : null);
  if (hours > 0) return pair(`${hours} h`, minutes > 0 ? `${minutes} min` : null);
  if (minutes > 0) return `${minutes} min`;
  return `${total} s`;
}

/** An ISO 8601 time in UTC to the minute: `"2026-12-03T14:05:09Z"` → `"2026-12-03 14:05 UTC"`; an unparseable string is returned as is. */
export function formatUtc(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/**
 * A hypothesis' predicted effect: `{ direction: "increase", effect: 0.05, relative: true }`
 * → `"increase by 5.0 % (relative)"`; an absolute prediction is in the signal's units.
 */
export function formatPrediction(prediction: Prediction | null): string {
  if (prediction === null) return "none stated";
  const size = prediction.relative
    ? formatRelative(Math.abs(prediction.effect)).replace(/^\+/, "")
    : formatNumber(Math.abs(prediction.effect));
  return `${prediction.direction} by ${size} (${prediction.relative ? "relative" : "absolute"})`;
}

/** A guardrail's harm or margin: a signed percent when `relative`, else a signed number in the guardrail's units. */
export function formatGuardrailAmount(value: number | null, relative: boolean): string {
  return relative ? formatRelative(value) : formatSignedNumber(value);
}

/** A guardrail's tolerated regression, unsigned: a percent when `relative` (`0.02` → `"2 %"`), else a number in the guardrail's units. */
export function formatGuardrailMargin(margin: number, relative: boolean): string {
  return relative ? formatShare(margin) : formatNumber(margin);
}

/**
 * Whether `url` may be rendered as a link: an absolute `http:` or `https:` URL.
 * Anything else (`javascript:`, `data:`, relative paths, garbage) is shown as text.
 */
export function isWebUrl(url: string | null): boolean {
  if (url === null) return false;
  try {
    const { protocol } = new URL(url);
    return protocol === "http:" || protocol === "https:";
  } catch {
    return false;
  }
}
