/**
 * API keys (admin keys with the `admin` scope only): create one (the key is
 * in the response once and never again), list them (never a key or its
 * hash), revoke one (idempotent; the key is refused from the next request on).
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { API_KEY_SCOPES, type ApiKeyInfo, createApiKey, listApiKeys, revokeApiKey } from "@outcome-runtime/runtime";
import { type TEnum, Type } from "typebox";
import { PROBLEM_RESPONSES, RoleDto } from "../../../dto";
import type { RouteOptions } from "../../route-options";

const ScopeDto = Type.Enum([...API_KEY_SCOPES]) as unknown as TEnum<[...typeof API_KEY_SCOPES]>;
const Scopes = Type.Array(ScopeDto, {
  minItems: 1,
  maxItems: API_KEY_SCOPES.length,
  uniqueItems: true,
  description: "read: GET and MCP read tools; write: changes the role allows; admin: keys, settings, export, import",
});
const DateTime = Type.String({ format: "date-time" });

const ApiKeyDto = Type.Object({
  id: Type.String(),
  name: Type.String(),
  role: RoleDto,
  scopes: Scopes,
  prefix: Type.String({ description: "the key's first 12 characters" }),
  createdAt: DateTime,
  lastUsedAt: Type.Union([DateTime, Type.Null()], { description: "last successful use, to the minute" }),
  revokedAt: Type.Union([DateTime, Type.Null()]),
});

function keyJson(key: ApiKeyInfo) {
  return {
    id: key.id,
    name: key.name,
    role: key.role,
    scopes: [...key.scopes],
    prefix: key.prefix,
    createdAt: key.createdAt.toISOString(),
    lastUsedAt: key.lastUsedAt?.toISOString() ?? null,
    revokedAt: key.revokedAt?.toISOString() ?? null,
  };
}

const keyRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
  app.post(
    "/v1/keys",
    {
      config: { operations: ["key.create"] },
      schema: {
        tags: ["keys"],
        summary: "Create an API key (admin)",
        description:
          "Scopes default to what the role allows: admin → read, write, admin; viewer → read (a viewer changes nothing); other roles → read, write.",
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 200, description: "a person's email or an agent's name" }),
            role: RoleDto,
            scopes: Type.Optional(Scopes),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            key: Type.String({ description: "shown once; store it now" }),
            id: Type.String(),
            name: Type.String(),
            role: RoleDto,
            scopes: Scopes,
            prefix: Type.String(),
            createdAt: DateTime,
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request, reply) => {
      const created = await createApiKey(deps, request.caller, request.body);
      return reply
        .code(201)
        .send({ ...created, scopes: [...created.scopes], createdAt: created.createdAt.toISOString() });
    },
  );

  app.get(
    "/v1/keys",
    {
      config: { operations: ["key.list"] },
      schema: {
        tags: ["keys"],
        summary: "List the workspace's API keys (admin)",
        description: "Revoked keys included, oldest first. Never a key or its hash.",
        response: { 200: Type.Object({ keys: Type.Array(ApiKeyDto) }), ...PROBLEM_RESPONSES },
      },
    },
    async (request) => ({ keys: (await listApiKeys(deps, request.caller)).map(keyJson) }),
  );

  app.delete(
    "/v1/keys/:id",
    {
      config: { operations: ["key.revoke"] },
      schema: {
        tags: ["keys"],
        summary: "Revoke an API key (admin)",
        description:
          "The key is refused (401) from the next request on. Idempotent: revoking a revoked key answers the same " +
          "key, with `revoked: false`.",
        params: Type.Object({ id: Type.String({ maxLength: 100 }) }),
        response: {
          200: Type.Object({
            key: ApiKeyDto,
            revoked: Type.Boolean({ description: "true when this request revoked it; false when it was already" }),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const { key, revoked } = await revokeApiKey(deps, request.caller, request.params.id);
      return { key: keyJson(key), revoked };
    },
  );
};

export default keyRoutes;
