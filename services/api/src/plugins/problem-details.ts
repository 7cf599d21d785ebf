/**
 * One error handler for the whole API: every error becomes an RFC 9457
 * problem details document `{ type, title, status, detail, code, requestId,
 * errors? }`. A 5xx never carries a message or stack from the server.
 */
import { DomainError, ERROR_CODES, type ErrorCode } from "@outcome-runtime/runtime";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { nulFields } from "../nul-fields";

export const PROBLEM_BASE = "https://outcome-runtime.dev/problems/";

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  requestId: string;
  errors?: unknown[];
  [extension: string]: unknown;
}

export function problem(
  request: FastifyRequest,
  code: ErrorCode,
  detail: string,
  extensions: Record<string, unknown> = {},
): Problem {
  const entry = ERROR_CODES[code];
  return {
    type: `${PROBLEM_BASE}${code}`,
    title: entry.title,
    status: entry.status,
    detail,
    code,
    requestId: request.id,
    ...extensions,
  };
}

export function sendProblem(reply: FastifyReply, body: Problem): FastifyReply {
  return reply.code(body.status).type("application/problem+json").send(body);
}

/**
 * Errors from `pg` or the network that mean "the database is unreachable right
 * now": refused or reset connections, a backend terminated by an
 * administrator or a restart (57P01–57P03), the connection-exception class
 * (08xxx), and the messages `pg` throws for a client whose connection died
 * (e.g. the ROLLBACK Kysely sends after a statement failed on a terminated
 * backend fails with "Client has encountered a connection error and is not
 * queryable", and that error replaces the first). Looks into `cause` too.
 */
function isUnavailable(error: unknown, depth = 0): boolean {
  const e = error as { code?: string; message?: string; cause?: unknown } | null;
  if (!e || typeof e !== "object") return false;
  if (depth < 3 && e.cause !== undefined && isUnavailable(e.cause, depth + 1)) return true;
  const codes = [
    "ECONNREFUSED",
    "ECONNRESET",
    "ETIMEDOUT",
    "57P01",
    "57P02",
    "57P03",
    "08000",
    "08001",
    "08003",
    "08006",
  ];
  return (
    (e.code !== undefined && (codes.includes(e.code) || /^08[0-9A-Z]{3}$/.test(e.code))) ||
    /Connection terminated|timeout exceeded when trying to connect|connection error and is not queryable|Client was closed and is not queryable|terminating connection due to administrator command/i.test(
      e.message ?? "",
    )
  );
}

function fromFastify(request: FastifyRequest, error: FastifyError): Problem | null {
  if (error.validation) {
    const errors = error.validation.map((v) => {
      const field =
        `${error.validationContext ?? "body"}${v.instancePath ? v.instancePath.replaceAll("/", ".") : ""}` +
        (v.keyword === "required" ? `.${String((v.params as { missingProperty?: string }).missingProperty)}` : "") +
        (v.keyword === "additionalProperties"
          ? `.${String((v.params as { additionalProperty?: string }).additionalProperty)}`
          : "");
      const allowed = (v.params as { allowedValues?: unknown[] }).allowedValues;
      return {
        field,
        message:
          v.keyword === "additionalProperties"
            ? "is not a known field; remove it"
            : `${v.message ?? "is invalid"}${allowed ? `: ${allowed.map((a) => JSON.stringify(a)).join(", ")}` : ""}`,
      };
    });
    return problem(request, "validation_failed", errors.map((e) => `${e.field} ${e.message}`).join("; "), { errors });
  }
  switch (error.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return problem(
        request,
        "payload_too_large",
        `the request body is larger than the limit of ${request.routeOptions.bodyLimit ?? 0} bytes`,
      );
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return problem(
        request,
        "unsupported_media_type",
        `content type "${request.headers["content-type"] ?? ""}" is not accepted here; send application/json${request.url.startsWith("/v1/outcomes") ? " or application/yaml" : ""}`,
      );
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return problem(request, "validation_failed", `the body is not valid JSON: ${error.message}`);
    default:
      break;
  }
  if (error.statusCode === 429) {
    return problem(request, "rate_limited", error.message);
  }
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    return problem(request, error.statusCode === 404 ? "not_found" : "validation_failed", error.message);
  }
  return null;
}

async function problemDetails(app: FastifyInstance): Promise<void> {
  // Postgres refuses text with a NUL character: refuse it at the door, for every route, with a clear error.
  app.addHook("onRequest", async (request, reply) => {
    if (/%00/i.test(request.url)) {
      return sendProblem(
        reply,
        problem(
          request,
          "validation_failed",
          "the URL contains a NUL character (%00); remove it from the path and query",
        ),
      );
    }
  });

  // The same for a NUL anywhere in a body (a title, a reason, an imported row), named by its path: before the
  // schema (whose messages would not say why) and before any use case.
  app.addHook("preValidation", async (request, reply) => {
    const fields = nulFields(request.body);
    if (fields.length === 0) return;
    return sendProblem(
      reply,
      problem(request, "validation_failed", fields.map((f) => `${f.field} ${f.message}`).join("; "), {
        errors: fields,
      }),
    );
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof DomainError) {
      const { errors, ...details } = error.details as { errors?: unknown[]; field?: unknown };
      // One shape for field errors, whether the schema or a use case found them.
      const fieldErrors =
        errors ?? (typeof details.field === "string" ? [{ field: details.field, message: error.message }] : undefined);
      const body = problem(request, error.code, error.message, {
        ...(Object.keys(details).length > 0 ? { details } : {}),
        ...(fieldErrors ? { errors: fieldErrors } : {}),
      });
      const requiredScopes = (details as { requiredScopes?: unknown }).requiredScopes;
      if (Array.isArray(requiredScopes)) {
        // A key without a scope the operation needs (RFC 6750 §3.1).
        reply.header(
          "www-authenticate",
          `Bearer realm="outcome-runtime", error="insufficient_scope", scope="${requiredScopes.join(" ")}"`,
        );
      }
      if (body.status === 503) {
        // A dependency is down: the client should come back, not give up.
        request.log.warn({ err: error }, "dependency unavailable");
        reply.header("retry-after", "5");
      } else if (body.status >= 500) request.log.error({ err: error }, "domain error with a 5xx status");
      return sendProblem(reply, body);
    }
    const mapped = fromFastify(request, error);
    if (mapped) return sendProblem(reply, mapped);
    const pgCode = (error as { code?: unknown }).code;
    if (pgCode === "23505" || pgCode === "40001" || pgCode === "40P01") {
      // A unique violation or serialisation failure from a concurrent write: safe to retry.
      request.log.warn({ err: error }, "write conflict");
      return sendProblem(
        reply,
        problem(request, "conflict", "the request collided with a concurrent change; retry it"),
      );
    }
    if (typeof pgCode === "string" && pgCode.startsWith("22")) {
      // A data exception: a value the columns cannot hold got past the checks (a NUL in a CSV field, a
      // malformed timestamp). The client's input, not a server fault: a 400 quoting Postgres' reason.
      request.log.warn({ err: error }, "value refused by the database");
      return sendProblem(
        reply,
        problem(
          request,
          "validation_failed",
          pgCode === "22021" || pgCode === "22P05"
            ? "a text value contains a NUL character (U+0000) or a byte sequence that cannot be stored; remove it"
            : `a value cannot be stored: ${(error as Error).message}; correct it and retry`,
        ),
      );
    }
    if (isUnavailable(error) || pgCode === "57014") {
      request.log.warn({ err: error }, "dependency unavailable");
      reply.header("retry-after", "5");
      return sendProblem(
        reply,
        problem(request, "service_unavailable", "the database is unavailable or too slow right now; retry shortly"),
      );
    }
    request.log.error({ err: error }, "unhandled error");
    return sendProblem(
      reply,
      problem(
        request,
        "internal_error",
        `an internal error occurred; quote request id ${request.id} when reporting it`,
      ),
    );
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      problem(request, "not_found", `no route ${request.method} ${request.url.split("?")[0]}; see /docs`),
    ),
  );
}

export default fp(problemDetails, { name: "problem-details" });
