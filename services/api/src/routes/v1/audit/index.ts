/**
 * The audit log: who did what, when, through which channel.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { listAudit } from "@outcome-runtime/runtime";
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
      schema: {
        tags: ["audit"],
        summary: "List audit events, newest first",
        querystring: Type.Object({
          subjectType: Type.Optional(Type.Enum(["outcome", "experiment", "gate", "api_key", "workspace"])),
          subjectId: Type.Optional(Type.String({ maxLength: 100 })),
          action: Type.Optional(Type.String({ maxLength: 100 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
        }),
        response: { 200: Type.Object({ items: Type.Array(AuditEventDto) }), ...PROBLEM_RESPONSES },
      },
    },
    async (request) => {
      const events = await listAudit(deps, request.caller, request.query as Parameters<typeof listAudit>[2]);
      return { items: events.map((e) => ({ ...e, at: e.at.toISOString() })) };
    },
  );
};

export default auditRoutes;
