/**
 * Workspace secrets: source credentials that connectors name in outcome.yaml
 * (`database_url_secret: analytics-db`). Anyone in the workspace may list
 * their names; only an admin, with a key that has the write and admin scopes,
 * sets (creates or rotates) or deletes one. No route ever returns a value.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import {
  deleteWorkspaceSecret,
  listWorkspaceSecrets,
  MAX_SECRET_BYTES,
  type SecretSummary,
  setWorkspaceSecret,
} from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { PROBLEM_RESPONSES } from "../../../dto";
import type { RouteOptions } from "../../route-options";

const DateTime = Type.String({ format: "date-time" });
const SecretName = Type.String({
  pattern: "^[a-z0-9][a-z0-9_.-]{0,62}$",
  description: "lowercase letters, digits, -, _ and ., e.g. analytics-db",
});

const SecretDto = Type.Object({
  name: Type.String(),
  description: Type.String(),
  version: Type.Integer({ description: "1 when created, one more at each rotation" }),
  createdBy: Type.String(),
  createdAt: DateTime,
  updatedBy: Type.String(),
  updatedAt: DateTime,
  lastUsedAt: Type.Union([DateTime, Type.Null()], { description: "last poll that opened it, to the minute" }),
});

function secretJson(secret: SecretSummary) {
  return {
    name: secret.name,
    description: secret.description,
    version: secret.version,
    createdBy: secret.createdBy,
    createdAt: secret.createdAt.toISOString(),
    updatedBy: secret.updatedBy,
    updatedAt: secret.updatedAt.toISOString(),
    lastUsedAt: secret.lastUsedAt?.toISOString() ?? null,
  };
}

const secretRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
  app.get(
    "/v1/secrets",
    {
      config: { operations: ["secret.list"] },
      schema: {
        tags: ["secrets"],
        summary: "List the workspace's secrets (names only)",
        description: "Names and metadata, for writing outcome.yaml. Never a value.",
        response: { 200: Type.Object({ secrets: Type.Array(SecretDto) }), ...PROBLEM_RESPONSES },
      },
    },
    async (request) => ({ secrets: (await listWorkspaceSecrets(deps, request.caller)).map(secretJson) }),
  );

  app.put(
    "/v1/secrets/:name",
    {
      config: { operations: ["secret.set"] },
      schema: {
        tags: ["secrets"],
        summary: "Set a secret (admin): create it, or rotate its value",
        description:
          "Stored encrypted (AES-256-GCM under the operator's OUTCOME_RUNTIME_SECRETS_KEY); the value is never " +
          "returned or logged. Connectors that name it use the new value from their next poll.",
        params: Type.Object({ name: SecretName }),
        body: Type.Object(
          {
            value: Type.String({ minLength: 1, maxLength: MAX_SECRET_BYTES, description: "the credential" }),
            description: Type.Optional(Type.String({ maxLength: 500 })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ secret: SecretDto, created: Type.Literal(false) }),
          201: Type.Object({ secret: SecretDto, created: Type.Literal(true) }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request, reply) => {
      const { secret, created } = await setWorkspaceSecret(deps, request.caller, {
        name: request.params.name,
        value: request.body.value,
        description: request.body.description,
      });
      return created
        ? reply.code(201).send({ secret: secretJson(secret), created: true as const })
        : reply.code(200).send({ secret: secretJson(secret), created: false as const });
    },
  );

  app.delete(
    "/v1/secrets/:name",
    {
      config: { operations: ["secret.delete"] },
      schema: {
        tags: ["secrets"],
        summary: "Delete a secret (admin)",
        description: "Polls of connectors that name it fail from then on, naming it.",
        params: Type.Object({ name: SecretName }),
        response: { 200: Type.Object({ secret: SecretDto }), ...PROBLEM_RESPONSES },
      },
    },
    async (request) => ({ secret: secretJson(await deleteWorkspaceSecret(deps, request.caller, request.params.name)) }),
  );
};

export default secretRoutes;
