/**
 * One error handler for the whole API: every error becomes an RFC 9457
 * problem details document `{ type, title, status, detail, code, requestId,
 * errors? }`. A 5xx never carries a message or stack from the server.
 */
import { DomainError, databaseError, ERROR_CODES, type ErrorCode } from "@outcome-runtime/runtime";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { nulFields } from "../nul-fields";

const PROBLEM_BASE = "https://outcome-runtime.dev/problems/";

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

/** The log line of each database error kind: a concurrent write, a value the columns refuse, an outage. */
const DATABASE_LOG_MESSAGES = {
  conflict: "write conflict",
  validation_failed: "value refused by the database",
  service_unavailable: "dependency unavailable",
} as const;

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
    // Postgres and its driver: the mapping every face shares (packages/db), logged with the driver's error.
    const fromDatabase = databaseError(error);
    if (fromDatabase) {
      request.log.warn({ err: error }, DATABASE_LOG_MESSAGES[fromDatabase.code]);
      if (fromDatabase.code === "service_unavailable") reply.header("retry-after", "5");
      return sendProblem(reply, problem(request, fromDatabase.code, fromDatabase.message));
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
