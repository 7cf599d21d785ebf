/**
 * Signed webhooks, delivered from the outbox (`webhook_deliveries`).
 *
 * Signature (as Stripe and GitHub do it): the header
 * `X-Outcome-Runtime-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where the
 * HMAC key is the shared secret and the message is `<t>.<raw body>`. Receivers
 * recompute it, compare in constant time, and reject a `t` older than their
 * tolerance (e.g. 5 minutes) against replays. `X-Outcome-Runtime-Event` carries
 * the event id: deliveries are at least once, so receivers deduplicate on it.
 *
 * SSRF: the URL is checked against the outbound policy (`OUTBOUND_ALLOW`, see
 * `@outcome-runtime/netguard`) on its resolved addresses before each attempt,
 * and redirects are not followed: a 3xx counts as a failed delivery, so a
 * receiver cannot bounce the signed POST to an internal address.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { signals } from "@outcome-runtime/db";
import { guardedFetch, type OutboundPolicy, type Resolver } from "@outcome-runtime/netguard";
import type { RuntimeDeps } from "../context";

export const SIGNATURE_HEADER = "x-outcome-runtime-signature";
export const EVENT_HEADER = "x-outcome-runtime-event";

/** The signature header value for a body at a time (unix seconds). */
export function signWebhook(secret: string, body: string, timestampSeconds: number): string {
  const mac = createHmac("sha256", secret).update(`${timestampSeconds}.${body}`).digest("hex");
  return `t=${timestampSeconds},v1=${mac}`;
}

/**
 * Verify a signature header against the raw body. False for a malformed
 * header, a wrong MAC, or a timestamp further than `toleranceSeconds` from now.
 */
export function verifyWebhookSignature(
  secret: string,
  body: string,
  header: string | undefined,
  options: { toleranceSeconds?: number; nowSeconds?: number } = {},
): boolean {
  if (header === undefined) return false;
  const parts = Object.fromEntries(
    header.split(",").map((kv) => {
      const i = kv.indexOf("=");
      return [kv.slice(0, i).trim(), kv.slice(i + 1).trim()];
    }),
  );
  const t = Number(parts.t);
  const v1 = parts.v1;
  if (!Number.isInteger(t) || typeof v1 !== "string" || !/^[0-9a-f]{64}$/.test(v1)) return false;
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - t) > (options.toleranceSeconds ?? 300)) return false;
  const expected = createHmac("sha256", secret).update(`${t}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(v1, "hex"));
}

export interface WebhookTarget {
  /** Where to POST; null: webhooks are recorded but not sent. */
  readonly url: string | null;
  readonly secret: string;
  /** Per-request timeout, ms (default 10 000). */
  readonly timeoutMs?: number;
  /** What the URL may resolve to besides public addresses; default `OUTBOUND_ALLOW` (netguard). */
  readonly policy?: OutboundPolicy;
  /** DNS for the policy check; default the system resolver (tests inject one). */
  readonly resolve?: Resolver;
}

export type DeliveryResult =
  | { readonly status: "delivered" | "already_done" | "not_configured" }
  | { readonly status: "failed"; readonly error: string };

/**
 * POST one outbox webhook, signed. Marks it delivered on a 2xx. On a failure
 * the attempt is counted and an Error is thrown so the job is retried with
 * backoff; `final` marks it failed for good (the last attempt).
 *
 * @throws Error when the receiver did not answer 2xx (after recording the attempt).
 */
export async function deliverWebhook(
  deps: RuntimeDeps,
  id: string,
  target: WebhookTarget,
  options: { final?: boolean } = {},
): Promise<DeliveryResult> {
  const hook = await signals.findWebhook(deps.db, id);
  if (hook === null || hook.status !== "pending") return { status: "already_done" };
  if (target.url === null) return { status: "not_configured" };
  const body = JSON.stringify({ id: hook.id, ...hook.payload });
  const t = Math.floor(Date.now() / 1000);
  let error: string;
  try {
    const send = guardedFetch({ policy: target.policy, resolve: target.resolve, maxRedirects: 0 });
    const response = await send(target.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "outcome-runtime-webhooks",
        [SIGNATURE_HEADER]: signWebhook(target.secret, body, t),
        [EVENT_HEADER]: hook.id,
      },
      body,
      signal: AbortSignal.timeout(target.timeoutMs ?? 10_000),
    });
    if (response.ok) {
      await signals.markWebhookAttempt(deps.db, id, { delivered: true });
      return { status: "delivered" };
    }
    error = `receiver answered ${response.status}`;
  } catch (cause) {
    error = cause instanceof Error ? cause.message : String(cause);
  }
  await signals.markWebhookAttempt(deps.db, id, { delivered: false, error, final: options.final === true });
  throw new Error(`webhook ${id} to ${target.url}: ${error}`);
}

/**
 * Resolves once none of the webhooks `ids` (outbox ids) is pending any more (delivered, or given up), or
 * after `maxMs` milliseconds, whichever comes first; checks every 20 ms. Never throws: a failed check ends
 * the wait. The batched poll lets the webhooks of its first pauses go out before the rest of its round.
 */
export async function waitForWebhooks(deps: RuntimeDeps, ids: readonly string[], maxMs: number): Promise<void> {
  const deadline = performance.now() + maxMs;
  let left = [...ids];
  while (left.length > 0 && performance.now() < deadline) {
    try {
      const found = await Promise.all(left.map((id) => signals.findWebhook(deps.db, id)));
      left = left.filter((_, i) => found[i]?.status === "pending");
    } catch {
      return;
    }
    if (left.length > 0) await sleep(20);
  }
}
