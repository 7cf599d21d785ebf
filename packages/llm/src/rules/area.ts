/**
 * Which product area an outcome is about, judged from the words of its id,
 * name, description, objective and signal metric.
 */
import { AREAS, type Area } from "./playbook";
import type { RulesOutcome } from "./types";

/**
 * Keyword → weight, per area. A word counts once per field it appears in,
 * times its weight, times the field's weight ({@link FIELD_WEIGHTS}). Strong,
 * unambiguous words weigh 2; words shared with other areas weigh 1.
 */
const AREA_KEYWORDS: Readonly<Record<Area, Readonly<Record<string, number>>>> = {
  checkout: {
    checkout: 2,
    cart: 2,
    basket: 2,
    abandonment: 2,
    abandon: 2,
    abandoned: 2,
    payment: 1,
    purchase: 1,
    order: 1,
    orders: 1,
    shipping: 1,
    buyer: 1,
    shopper: 1,
  },
  onboarding: {
    onboarding: 2,
    signup: 2,
    signups: 2,
    registration: 2,
    register: 1,
    welcome: 1,
    setup: 1,
    wizard: 1,
    sign: 1,
    account: 1,
  },
  activation: {
    activation: 2,
    activate: 2,
    activated: 2,
    aha: 2,
    adoption: 1,
    trial: 1,
    first: 1,
    value: 1,
    invite: 1,
    invites: 1,
    milestone: 1,
    ttv: 2,
  },
  retention: {
    retention: 2,
    churn: 2,
    retain: 2,
    retained: 2,
    returning: 2,
    cancellation: 2,
    cancel: 1,
    renewal: 2,
    reactivation: 2,
    dau: 1,
    wau: 1,
    mau: 1,
    engagement: 1,
    stickiness: 2,
    weekly: 1,
    active: 1,
  },
  pricing: {
    pricing: 2,
    price: 2,
    paid: 2,
    upgrade: 2,
    upgrades: 2,
    plan: 1,
    plans: 1,
    paywall: 2,
    subscription: 1,
    arpu: 2,
    revenue: 1,
    monetization: 2,
    monetisation: 2,
    aov: 2,
    annual: 1,
    discount: 1,
  },
  performance: {
    performance: 2,
    latency: 2,
    load: 2,
    loading: 2,
    speed: 2,
    p50: 2,
    p75: 2,
    p90: 2,
    p95: 2,
    p99: 2,
    ttfb: 2,
    lcp: 2,
    inp: 2,
    fcp: 2,
    cls: 2,
    vitals: 2,
    slow: 1,
    render: 1,
    response: 1,
    crash: 2,
    timeout: 1,
    ms: 1,
    seconds: 1,
  },
};

/** The signal's metric says most about the area; free text the least. */
const FIELD_WEIGHTS = { metric: 3, id: 2, name: 2, objective: 1, description: 1 } as const;

/** Words of a text: lowercase, split on anything not a letter or digit (so snake, kebab and spaces all split). */
function words(text: string): string[] {
  return text
    .replace(/([a-z])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length > 0);
}

export interface AreaJudgement {
  /** The best-scoring area, or null when no keyword matched. */
  area: Area | null;
  /** Score per area (0 when nothing matched). */
  scores: Record<Area, number>;
  /** The keywords that matched for the chosen area, sorted. */
  matched: string[];
}

/**
 * Picks the area of an outcome: the area whose keywords score highest over
 * the outcome's fields; ties go to the area listed first in {@link AREAS}.
 *
 * @example detectArea({ id: "checkout-abandonment", … }).area // "checkout"
 */
export function detectArea(outcome: RulesOutcome): AreaJudgement {
  const fields: [keyof typeof FIELD_WEIGHTS, string][] = [
    ["metric", outcome.signal.metric],
    ["id", outcome.id],
    ["name", outcome.name],
    ["objective", outcome.objective ?? ""],
    ["description", outcome.description ?? ""],
  ];
  const scores = Object.fromEntries(AREAS.map((a) => [a, 0])) as Record<Area, number>;
  const matchedBy = Object.fromEntries(AREAS.map((a) => [a, new Set<string>()])) as Record<Area, Set<string>>;
  for (const [field, text] of fields) {
    const present = new Set(words(text));
    for (const area of AREAS) {
      for (const [keyword, weight] of Object.entries(AREA_KEYWORDS[area])) {
        if (present.has(keyword)) {
          scores[area] += weight * FIELD_WEIGHTS[field];
          matchedBy[area].add(keyword);
        }
      }
    }
  }
  let best: Area | null = null;
  for (const area of AREAS) {
    if (scores[area] > 0 && (best === null || scores[area] > scores[best])) best = area;
  }
  return { area: best, scores, matched: best === null ? [] : [...matchedBy[best]].sort() };
}
