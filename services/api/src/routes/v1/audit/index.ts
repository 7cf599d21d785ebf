/**
 * The audit log: who did what, when, through which channel.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { DECISION_CHANNELS, listAuditPage } from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { PROBLEM_RESPONSES } from "../../../dto";
import type { RouteOptions } from "../../route-options";

const AuditEventDto = Type.Object({
  id: Type.String(),
  at: Type.String({ format: "date-time" }),
  actor: Type.Union([Type.Object({ id: Type.String(), name: Type.String(), role: Type.String() }), Type.Null()]),
  channel: Type.String(),
  action: Type.String(),
  subjectType: Type.String(),
  subjectId: Type.String(),
  before: Type.Unknown(),
  after: Type.Unknown(),
  requestId: Type.Union([Type.String(), Type.Null()]),
});

const auditRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
  app.get(
    "/v1/audit",
    {
      config: { operations: ["audit.read"] },
      schema: {
        tags: ["audit"],
        summary: "List audit events, newest first",
        description:
          "Filters combine; `nextCursor` (null on the last page) passed back as `cursor` gives the next page.",
        querystring: Type.Object({
          subjectType: Type.Optional(Type.Enum(["outcome", "experiment", "gate", "api_key", "workspace", "secret"])),
          subjectId: Type.Optional(Type.String({ maxLength: 100 })),
          action: Type.Optional(Type.String({ maxLength: 100 })),
          actor: Type.Optional(Type.String({ minLength: 1, maxLength: 320, description: "the actor's name" })),
          channel: Type.Optional(Type.Enum([...DECISION_CHANNELS])),
          cursor: Type.Optional(Type.String({ maxLength: 200 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
        }),
        response: {
          200: Type.Object({ items: Type.Array(AuditEventDto), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
          ...PROBLEM_RESPONSES,
        },
      },
    },
    async (request) => {
      const page = await listAuditPage(deps, request.caller, request.query);
      return { items: page.items.map((e) => ({ ...e, at: e.at.toISOString() })), nextCursor: page.nextCursor };
    },
  );
};

export default auditRoutes;
