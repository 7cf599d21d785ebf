/**
 * The pages behind gate email links, outside `/v1` and without an API key:
 * the link's token is the credential.
 *
 * `GET /email/gates/:gateId/:decision?to=…&token=…` shows a confirmation page
 * and changes nothing (mail scanners fetch links); the page's form POSTs to
 * the same URL, and only that decides. The pages run no script; they are
 * served with a Content-Security-Policy that forbids scripts, no caching, no
 * referrer (the token is in the URL) and no indexing.
 */
import formbody from "@fastify/formbody";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { renderDecisionPage } from "@outcome-runtime/notify";
import { decideByEmailLink, type EmailLinkPage, inspectEmailLink } from "@outcome-runtime/runtime";
import type { FastifyReply } from "fastify";
import { Type } from "typebox";
import type { RouteOptions } from "./route-options";

const Params = Type.Object({ gateId: Type.String({ maxLength: 64 }), decision: Type.String({ maxLength: 32 }) });
const Query = Type.Object({
  to: Type.Optional(Type.String({ maxLength: 320 })),
  token: Type.Optional(Type.String({ maxLength: 128 })),
});
const Form = Type.Object({
  reason: Type.Optional(Type.String({ maxLength: 2000 })),
  approve: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Array(Type.String({ maxLength: 64 }))])),
  shown: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Array(Type.String({ maxLength: 64 }))])),
});

const list = (value: string | string[] | undefined): string[] | undefined =>
  value === undefined ? undefined : Array.isArray(value) ? value : [value];

const emailRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps, publicUrl }) => {
  await app.register(formbody, { bodyLimit: 64 * 1024 });
  const links = { publicUrl };
  const formTarget = (() => {
    try {
      return new URL(publicUrl).origin;
    } catch {
      return "";
    }
  })();

  function send(reply: FastifyReply, page: EmailLinkPage): FastifyReply {
    return reply
      .code(page.httpStatus)
      .header("content-type", "text/html; charset=utf-8")
      .header(
        "content-security-policy",
        `default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'self' ${formTarget}; frame-ancestors 'none'; base-uri 'none'`,
      )
      .header("referrer-policy", "no-referrer")
      .header("cache-control", "no-store")
      .header("x-robots-tag", "noindex, nofollow")
      .send(renderDecisionPage(page.page));
  }

  const schema = { hide: true, params: Params, querystring: Query } as const;

  app.get("/email/gates/:gateId/:decision", { schema }, async (request, reply) => {
    const page = await inspectEmailLink(deps, links, {
      gateId: request.params.gateId,
      decision: request.params.decision,
      recipient: request.query.to ?? "",
      token: request.query.token ?? "",
    });
    return send(reply, page);
  });

  app.post(
    "/email/gates/:gateId/:decision",
    {
      schema: { ...schema, body: Form },
      // A person submits this form; a low limit per address keeps token guessing pointless as well as slow.
      config: { rateLimit: { max: 120, timeWindow: 60_000 } },
    },
    async (request, reply) => {
      const page = await decideByEmailLink(
        deps,
        links,
        {
          gateId: request.params.gateId,
          decision: request.params.decision,
          recipient: request.query.to ?? "",
          token: request.query.token ?? "",
        },
        {
          reason: request.body?.reason,
          approve: list(request.body?.approve),
          shown: list(request.body?.shown),
        },
        request.id,
      );
      return send(reply, page);
    },
  );
};

export default emailRoutes;
