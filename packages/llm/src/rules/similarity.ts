/**
 * When a proposed hypothesis counts as "the same" as one that already failed
 * for the outcome.
 */
import type { RulesFailedHypothesis } from "./types";

/** Words too common in hypothesis text to say anything about similarity. */
const STOPWORDS = new Set(
  (
    "the and for with that this then will because about our their they them its are was were been into from " +
    "than when which while who whom what more most less many much each every only also just any all not can " +
    "could would should may might must have has had does did let lets make makes made show shows showing use " +
    "uses using add adds adding increase decrease rate users user sessions session"
  ).split(" "),
);

/** Content tokens: lowercase words of three or more letters and digits, minus stopwords. */
function contentTokens(text: string): Set<string> {
  return new Set(
    text
      .toLowerCase()
      .split(/[^a-z0-9]+/)
      .filter((w) => w.length >= 3 && !STOPWORDS.has(w)),
  );
}

/** |A ∩ B| / |A ∪ B|; 0 for two empty sets. */
function jaccard(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
  if (a.size === 0 && b.size === 0) return 0;
  let inter = 0;
  for (const t of a) if (b.has(t)) inter++;
  return inter / (a.size + b.size - inter);
}

/** The Jaccard index at or above which two titles, or two title+statement texts, are the same idea. */
const SIMILARITY_THRESHOLD = 0.5;

/**
 * The failed hypothesis a candidate repeats, if any. A candidate repeats a
 * failed hypothesis when (1) both name the same `mechanism_key`, or (2) the
 * token Jaccard index of their titles is ≥ 0.5, or (3) the token Jaccard
 * index of title + statement is ≥ 0.5 (tokens: {@link contentTokens}).
 */
export function findSimilarFailure(
  candidate: { title: string; statement: string; mechanism_key: string },
  failed: readonly RulesFailedHypothesis[],
): { failed: RulesFailedHypothesis; why: string } | undefined {
  const title = contentTokens(candidate.title);
  const full = contentTokens(`${candidate.title} ${candidate.statement}`);
  for (const f of failed) {
    if (f.mechanism_key !== undefined && f.mechanism_key === candidate.mechanism_key) {
      return { failed: f, why: `same mechanism_key ${f.mechanism_key}` };
    }
    const jt = jaccard(title, contentTokens(f.title));
    if (jt >= SIMILARITY_THRESHOLD) return { failed: f, why: `title token Jaccard ${jt.toFixed(2)}` };
    const js = jaccard(full, contentTokens(`${f.title} ${f.statement}`));
    if (js >= SIMILARITY_THRESHOLD) return { failed: f, why: `title+statement token Jaccard ${js.toFixed(2)}` };
  }
  return undefined;
}
