/**
 * The dashboard: `services/web/dist` served at `/`. Hashed files under
 * `/assets/` are cached for a year; `index.html` is revalidated every time, so
 * a new build is picked up at once. Any other GET for a page (not an API path)
 * that accepts HTML gets `index.html`, so the app's own links (`/gates/<id>`,
 * `/experiments/<id>`, as in gate emails) open the app. Without a build, `/`
 * says how to make one.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

/** The app's pages load only our own scripts and styles, talk only to us, and are never framed. */
export const APP_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** Paths that belong to the API, never to the app: an unknown one is a 404 problem, not index.html. */
const API_PREFIXES = ["/v1", "/mcp", "/email", "/docs", "/healthz", "/readyz", "/session", "/assets"];

const IMMUTABLE = "public, max-age=31536000, immutable";

/** The default build folder: services/web/dist, beside this service. */
const DEFAULT_WEB_ROOT = new URL("../../../web/dist/", import.meta.url);

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Outcome Runtime</title></head>
<body>
<main>
<h1>Outcome Runtime</h1>
<p>The dashboard is not built: run <code>pnpm build</code>, then restart the API.</p>
<p>The API is up: see <a href="/docs">/docs</a>.</p>
</main>
</body>
</html>
`;

function isApiPath(path: string): boolean {
  return API_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`));
}

function wantsPage(request: FastifyRequest): boolean {
  const path = request.url.split("?")[0] ?? "/";
  return !isApiPath(path) && (request.headers.accept ?? "").includes("text/html");
}

export interface WebOptions {
  /** The built app's folder (default services/web/dist); `null` serves the not-built page. */
  readonly webRoot?: string | URL | null;
}

export default async function webRoutes(app: FastifyInstance, options: WebOptions): Promise<void> {
  const given = options.webRoot === undefined ? DEFAULT_WEB_ROOT : options.webRoot;
  const root = given === null ? null : typeof given === "string" ? given : fileURLToPath(given);
  const built = root !== null && existsSync(`${root.replace(/\/+$/, "")}/index.html`);

  // Helmet (global) set the API's CSP in onRequest; the app's pages get theirs.
  app.addHook("onSend", async (request, reply, payload) => {
    reply.header("content-security-policy", APP_CSP);
    if (reply.statusCode === 200) {
      const path = request.url.split("?")[0] ?? "/";
      reply.header("cache-control", path.startsWith("/assets/") ? IMMUTABLE : "no-cache");
    }
    return payload;
  });

  const page = (request: FastifyRequest, reply: FastifyReply) => {
    if (!wantsPage(request)) return reply.callNotFound();
    return built ? reply.sendFile("index.html") : reply.type("text/html; charset=utf-8").send(NOT_BUILT_PAGE);
  };

  if (built) {
    await app.register(fastifyStatic, {
      root,
      prefix: "/",
      // One route per file at start: an unknown file falls through to the page fallback below.
      wildcard: false,
      cacheControl: false,
      etag: true,
      lastModified: true,
    });
  } else {
    app.get("/", { schema: { hide: true } }, (_request, reply) =>
      reply.type("text/html; charset=utf-8").send(NOT_BUILT_PAGE),
    );
  }
  app.get("/*", { schema: { hide: true } }, page);
}
