/**
 * The API's log settings: what a request log line may show. Secrets travel in
 * some URLs (an email decision link's `token`, an OAuth-style `code`, a `key`),
 * so the request serializer rewrites the URL before pino writes it, at every
 * level; credentials in headers are redacted by path. `server.ts` uses these
 * options; tests pass them with a stream of their own.
 */
import type { LoggerOptions } from "pino";

/** What replaces a secret in a log line. */
export const REDACTED = "[redacted]";

/** Query parameters whose values are never logged, by name (case-insensitive), e.g. `token`, `api_key`, `code`. */
const SECRET_PARAM = /(^|[_-])(token|key|code|secret|password)$/i;

/** Headers that carry credentials; pino replaces them wherever a log line holds request headers. */
const REDACTED_PATHS = ["req.headers.authorization", "req.headers.cookie", "req.headers['idempotency-key']"];

function decodedName(raw: string): string {
  try {
    return decodeURIComponent(raw.replaceAll("+", " "));
  } catch {
    return raw;
  }
}

/**
 * A request URL as it may be logged: under `/email/` (decision links, whose
 * query is the credential) the whole query becomes `[redacted]`; elsewhere the
 * value of every `token`, `key` or `code` parameter (and `*_token`, `*-key`,
 * `secret`, `password`…) does. The path and the other parameters are kept as sent.
 *
 * @example redactUrl("/email/gates/g1/approve?to=a%40b&token=abc") // "/email/gates/g1/approve?[redacted]"
 * @example redactUrl("/v1/x?limit=5&token=abc") // "/v1/x?limit=5&token=[redacted]"
 */
export function redactUrl(url: string): string {
  const q = url.indexOf("?");
  if (q < 0) return url;
  const path = url.slice(0, q);
  if (/^\/+email(\/|$)/i.test(path)) return `${path}?${REDACTED}`;
  const query = url
    .slice(q + 1)
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      const name = eq < 0 ? pair : pair.slice(0, eq);
      return SECRET_PARAM.test(decodedName(name)) ? `${name}=${REDACTED}` : pair;
    })
    .join("&");
  return `${path}?${query}`;
}

/** The request fields Fastify's own `req` serializer reads (a `FastifyRequest`). */
interface LoggedRequest {
  readonly method?: string;
  readonly url?: string;
  readonly headers?: Record<string, string | string[] | undefined>;
  readonly host?: string;
  readonly ip?: string;
  readonly socket?: { readonly remotePort?: number } | null;
}

/**
 * Fastify's default `req` serializer with the URL passed through
 * {@link redactUrl}: every "incoming request" line and any line logging a
 * `req`. Headers are never copied into the line.
 */
export function serializeRequest(request: LoggedRequest) {
  return {
    method: request.method,
    url: typeof request.url === "string" ? redactUrl(request.url) : undefined,
    version: request.headers?.["accept-version"],
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/**
 * The pino options of the API's logger at `level`: the request serializer
 * above and header redaction. `extra` adds options (e.g. a `stream` in tests).
 */
export function apiLoggerOptions(
  level: string,
  extra: LoggerOptions & { stream?: NodeJS.WritableStream } = {},
): LoggerOptions & { stream?: NodeJS.WritableStream } {
  return {
    level,
    redact: { paths: REDACTED_PATHS, censor: REDACTED },
    ...extra,
    serializers: { ...extra.serializers, req: serializeRequest },
  };
}
