/**
 * "Did you mean …?" suggestions for misspelt keys and values.
 */

/**
 * The candidate closest to `input`, if it is close enough to be a plausible
 * typo: same letters ignoring case, `_`/`-` and camelCase (`pollInterval` →
 * `poll_interval`), or an optimal-string-alignment edit distance of at most
 * one edit per three characters.
 */
export function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  const squashed = squash(input);
  const exact = squashedIndex(candidates).get(squashed);
  if (exact !== undefined) return exact;
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(input.length / 3)) + 1;
  for (const candidate of candidates) {
    // Cheap bound first: lengths that differ more than the budget cannot match.
    if (Math.abs(candidate.length - input.length) >= bestDistance) continue;
    const distance = editDistance(input.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

const squashedIndexes = new WeakMap<readonly string[], Map<string, string>>();

/**
 * Squashed candidate → candidate, kept per candidate list: a file with
 * 100 000 unknown keys asks about the same list 100 000 times.
 */
function squashedIndex(candidates: readonly string[]): Map<string, string> {
  let index = squashedIndexes.get(candidates);
  if (index === undefined) {
    index = new Map();
    for (const candidate of candidates) {
      const key = squash(candidate);
      if (!index.has(key)) index.set(key, candidate);
    }
    squashedIndexes.set(candidates, index);
  }
  return index;
}

function squash(text: string): string {
  return text.toLowerCase().replaceAll(/[-_\s]/gu, "");
}

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions. */
function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array<number>(rows * cols).fill(0);
  const at = (i: number, j: number): number => d[i * cols + j] ?? 0;
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        value = Math.min(value, at(i - 2, j - 2) + 1);
      }
      d[i * cols + j] = value;
    }
  }
  return at(a.length, b.length);
}
