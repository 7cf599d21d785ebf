/**
 * API keys: create one (admins only). The key is in the response once and
 * never again.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { createApiKey } from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { PROBLEM_RESPONSES, RoleDto } from "../../../dto";
import type { RouteOptions } from "../../route-options";

const keyRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
  app.post(
    "/v1/keys",
    {
      schema: {
        tags: ["keys"],
        summary: "Create an API key",
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 200, description: "a person's email or an agent's name" }),
            role: RoleDto,
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            key: Type.String({ description: "shown once; store it now" }),
            id: Type.String(),
            name: Type.String(),
            role: RoleDto,
            prefix: Type.String(),
            createdAt: Type.String({ format: "date-time" }),
          }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request, reply) => {
      const created = await createApiKey(deps, request.caller, request.body);
      return reply.code(201).send({ ...created, createdAt: created.createdAt.toISOString() });
    },
  );
};

export default keyRoutes;
