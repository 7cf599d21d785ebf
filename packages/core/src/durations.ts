/**
 * Durations as outcome.yaml writes them, for people: `5400` → `1h 30m`,
 * `900` → `15m`, `90` → `1m 30s`, `86400` → `1d`. Seconds in, whole seconds
 * out (rounded), the largest units first, `0s` for zero.
 */
export function formatSeconds(seconds: number): string {
  const parts: string[] = [];
  let rest = Math.round(Math.max(0, seconds));
  for (const [unit, size] of [
    ["d", 86_400],
    ["h", 3600],
    ["m", 60],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0 || parts.length === 0) parts.push(`${rest}s`);
  return parts.join(" ");
}
