/**
 * What every HTTP connector does with a response the same way: read its body
 * up to a cap, and read how long the source asks to wait (`Retry-After`).
 */

/** The body as text, or null when it is larger than `limit` bytes (reading stops there, the rest is cancelled). */
export async function readCapped(response: Response, limit: number): Promise<string | null> {
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await response.body?.cancel().catch(() => {});
    return null;
  }
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * `Retry-After` (RFC 9110 §10.2.3: delay-seconds or an HTTP date) in
 * milliseconds; null when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/u.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

/** Whether `value` is a plain JSON object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * Runs `read` with a signal of its own that follows `signal`, and is aborted
 * when `read` fails: the other requests of a read are then cancelled, as their
 * answers would be thrown away.
 *
 * @throws what `read` throws
 */
export async function linked<T>(signal: AbortSignal | undefined, read: (poll: AbortSignal) => Promise<T>): Promise<T> {
  const poll = new AbortController();
  const onAbort = (): void => poll.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await read(poll.signal);
  } catch (error) {
    poll.abort();
    throw error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}
