/**
 * The Unleash provider's settings, weight rounding and snippets, and the
 * failures a real Unleash does not produce on demand (429, 5xx, a slow or
 * garbled answer, an oversized one), against a small local HTTP server that
 * answers the Admin API's paths in the shapes of Unleash's OpenAPI document
 * (`/docs/openapi.json` of unleash-server 7.5.1: `projectFeaturesSchema`,
 * `featureEnvironmentSchema`; repo Unleash/unleash,
 * src/lib/openapi/spec/project-features-schema.ts;
 * https://docs.getunleash.io/reference/api/unleash/get-features). The real
 * server's answers are covered by unleash.provider.int.test.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import ts from "typescript";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FlagProviderError, type FlagTarget } from "../provider";
import { SNIPPET_LANGUAGES } from "../provider-module";
import { confirmedAt, STRATEGY_TITLE, toPerMille, unleashProvider } from "./unleash.provider";

const TOKEN = "*:*.do-not-leak-0123456789abcdef";

type Handler = (request: IncomingMessage, response: ServerResponse) => void;
let handler: Handler = (_request, response) => response.writeHead(500).end();
let server: Server;
let base: string;
const seen: { method: string; url: string; authorization: string | undefined }[] = [];

beforeAll(async () => {
  server = createServer((request, response) => {
    seen.push({ method: request.method ?? "", url: request.url ?? "", authorization: request.headers.authorization });
    handler(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  seen.length = 0;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function json(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
}

function provider(settings: Record<string, unknown> = {}, fetchFn: typeof fetch = fetch) {
  return unleashProvider.create(
    { api_url: `${base}/api`, environment: "production", ...settings },
    { credentials: { api_token: TOKEN }, allowedApiUrls: [`${base}/api`], fetch: fetchFn },
  );
}

const flag: FlagTarget = {
  key: "outcome-runtime-checkout",
  experimentKey: "checkout",
  description: "Outcome Runtime experiment checkout",
  arms: [
    { name: "control", weight: 0.5 },
    { name: "treatment", weight: 0.5 },
  ],
};

async function rejection(promise: Promise<unknown> | (() => unknown)): Promise<FlagProviderError> {
  try {
    await (typeof promise === "function" ? promise() : promise);
  } catch (error) {
    expect(error).toBeInstanceOf(FlagProviderError);
    expect((error as Error).message).not.toContain(TOKEN);
    expect(JSON.stringify((error as FlagProviderError).details)).not.toContain(TOKEN);
    return error as FlagProviderError;
  }
  throw new Error("expected a FlagProviderError");
}

const listed = { version: 2, features: [{ name: flag.key, environments: [{ name: "production", enabled: true }] }] };
const environment = {
  name: flag.key,
  environment: "production",
  enabled: true,
  strategies: [
    {
      id: "6b5157cb-343a-41e7-bfa3-7b4ec3044840",
      name: "flexibleRollout",
      title: STRATEGY_TITLE,
      disabled: false,
      sortOrder: 0,
      constraints: [],
      segments: [],
      parameters: { rollout: "100", stickiness: "default", groupId: flag.key },
      variants: [
        { name: "control", weight: 250, weightType: "fix", stickiness: "default" },
        { name: "treatment", weight: 750, weightType: "variable", stickiness: "default" },
      ],
    },
  ],
};

describe("unleash provider: the Admin API's answers", () => {
  it("sends the token as the Authorization header and reads the documented shapes", async () => {
    handler = (request, response) => {
      if (request.url === "/api/admin/projects/default/features") return json(response, 200, listed);
      if (request.url === `/api/admin/projects/default/features/${flag.key}/environments/production`) {
        return json(response, 200, environment, { etag: 'W/"abc"' });
      }
      json(response, 404, { name: "NotFoundError", message: "no" });
    };
    const read = await provider().read([flag.key, "other"], AbortSignal.timeout(5000));
    expect(read.get(flag.key)).toEqual({
      exists: true,
      enabled: true,
      variations: ["control", "treatment"],
      weights: { control: 0.25, treatment: 0.75 },
      version: 'W/"abc"',
    });
    expect(read.get("other")?.exists).toBe(false);
    expect(seen.map((s) => s.authorization)).toEqual([TOKEN, TOKEN]);
  });

  it("429 is rate_limited with Retry-After in ms", async () => {
    handler = (_request, response) => json(response, 429, { message: "Too many requests" }, { "retry-after": "7" });
    const error = await rejection(provider().read([flag.key], AbortSignal.timeout(5000)));
    expect(error.code).toBe("rate_limited");
    expect(error.retryAfterMs).toBe(7000);
    expect(error.retryable).toBe(true);
    expect(error.message).toContain("GET /api/admin/projects/default/features");
  });

  it("5xx is unavailable, and a token the server quotes back is not repeated", async () => {
    handler = (request, response) =>
      json(response, 503, { message: `upstream failed for ${request.headers.authorization}` });
    const error = await rejection(provider().ensureFlag(flag, AbortSignal.timeout(5000)));
    expect(error.code).toBe("unavailable");
    expect(error.message).toContain("<api_token>");
  });

  it("a slow server is a timeout", async () => {
    handler = (_request, response) => {
      setTimeout(() => json(response, 200, listed), 3000).unref();
    };
    const error = await rejection(provider().read([flag.key], AbortSignal.timeout(200)));
    expect(error.code).toBe("timeout");
  });

  it("garbage, a wrong shape or a wrong field is bad_response naming what is wrong", async () => {
    handler = (_request, response) =>
      response.writeHead(200, { "content-type": "text/html" }).end("<html>proxy</html>");
    expect((await rejection(provider().read([flag.key], AbortSignal.timeout(5000)))).code).toBe("bad_response");

    handler = (_request, response) => json(response, 200, { features: "none" });
    const shape = await rejection(provider().read([flag.key], AbortSignal.timeout(5000)));
    expect(shape.code).toBe("bad_response");
    expect(shape.message).toContain("features");

    handler = (request, response) => {
      if (request.url === "/api/admin/projects/default/features") return json(response, 200, listed);
      const broken = structuredClone(environment);
      (broken.strategies[0]!.variants[1] as { weight: unknown }).weight = "lots";
      json(response, 200, broken);
    };
    const field = await rejection(provider().read([flag.key], AbortSignal.timeout(5000)));
    expect(field.code).toBe("bad_response");
    expect(field.message).toContain("strategies[0].variants[1].weight");

    handler = (_request, response) => json(response, 200, { name: "someone-else", environments: [] });
    const other = await rejection(provider().ensureFlag(flag, AbortSignal.timeout(5000)));
    expect(other.code).toBe("bad_response");
    expect(other.message).toContain("name");
  });

  it("an answer over 5 MB is bad_response", async () => {
    handler = (_request, response) => {
      response.writeHead(200, { "content-type": "application/json" });
      const chunk = `{"name":"${"x".repeat(1024 * 1024)}"},`;
      response.write('{"version":2,"features":[');
      for (let i = 0; i < 6; i++) response.write(chunk);
      response.end('{"name":"last"}]}');
    };
    const error = await rejection(provider().read([flag.key], AbortSignal.timeout(10_000)));
    expect(error.code).toBe("bad_response");
    expect(error.message).toContain("larger than");
  });

  it("a host the outbound policy refuses is provider_refused", async () => {
    const refusing: typeof fetch = async () => {
      throw Object.assign(new Error("outbound policy: 10.0.0.1 is a private address"), { code: "outbound_private" });
    };
    const error = await rejection(provider({}, refusing).read([flag.key], AbortSignal.timeout(5000)));
    expect(error.code).toBe("provider_refused");
  });
});

describe("unleash provider: settings", () => {
  const create = (settings: Record<string, unknown>, credentials: Record<string, string> = { api_token: TOKEN }) =>
    unleashProvider.create(settings, { credentials, allowedApiUrls: ["https://unleash.example.com/api"], fetch });

  it("binds to the project, environment and API URL", () => {
    const flags = create({ api_url: "https://unleash.example.com/api", environment: "production" });
    expect(flags.type).toBe("unleash");
    expect(flags.describe).toBe("unleash default/production");
    expect(unleashProvider.documentedApiUrls).toEqual([]);
    expect(unleashProvider.credentials.map((c) => c.credential)).toEqual(["api_token"]);
  });

  it.each([
    [{ api_url: "https://unleash.example.com/api" }, "flags.environment"],
    [{ api_url: "https://unleash.example.com/api", environment: "prod env" }, "flags.environment"],
    [{ api_url: "https://unleash.example.com/api", environment: "production", project: "a/b" }, "flags.project"],
    [{ api_url: "https://unleash.example.com/api", environment: "production", stickiness: "1x" }, "flags.stickiness"],
    [{ environment: "production" }, "flags.api_url"],
    [{ api_url: "ftp://unleash.example.com", environment: "production" }, "flags.api_url"],
  ])("refuses %j naming %s", async (settings, field) => {
    const error = await rejection(() => create(settings));
    expect(error.code).toBe("invalid_config");
    expect(error.message).toContain(field);
  });

  it("refuses a missing token, and one with a newline without showing it", async () => {
    const settings = { api_url: "https://unleash.example.com/api", environment: "production" };
    const missing = await rejection(() => create(settings, {}));
    expect(missing.code).toBe("invalid_config");
    expect(missing.message).toContain("flags.api_token_env");
    const newline = await rejection(() => create(settings, { api_token: `${TOKEN}\n` }));
    expect(newline.code).toBe("invalid_config");
  });

  it("refuses an API URL the operator did not allow (Unleash documents no host)", async () => {
    const error = await rejection(() => create({ api_url: "https://evil.example.net/api", environment: "production" }));
    expect(error.code).toBe("provider_refused");
    expect(error.message).toContain("FLAG_API_URLS=unleash=https://evil.example.net/api");
  });

  it("refuses weights that are not the arms' fractions, before any request", async () => {
    const flags = provider();
    const short = await rejection(flags.setWeights(flag, { control: 0.5, treatment: 0.4 }, AbortSignal.timeout(1000)));
    expect(short.code).toBe("invalid_config");
    expect(short.message).toContain("sum to 0.9");
    const stranger = await rejection(flags.setWeights(flag, { control: 0.5, other: 0.5 }, AbortSignal.timeout(1000)));
    expect(stranger.message).toContain('"other"');
    expect(seen).toEqual([]);
  });
});

describe("unleash provider: when a write was confirmed", () => {
  const header = "Mon, 04 Jan 2027 10:00:07 GMT";
  const second = Date.parse("2027-01-04T10:00:07.000Z");

  it("is our clock to the millisecond when it falls in the Date header's second (or just after)", () => {
    expect(confirmedAt(header, second + 431).toISOString()).toBe("2027-01-04T10:00:07.431Z");
    expect(confirmedAt(header, second + 1_250).toISOString()).toBe("2027-01-04T10:00:08.250Z");
    expect(confirmedAt(null, second + 5).toISOString()).toBe("2027-01-04T10:00:07.005Z");
  });

  it("is the server's second when the clocks disagree", () => {
    expect(confirmedAt(header, second - 1).toISOString()).toBe("2027-01-04T10:00:07.000Z");
    expect(confirmedAt(header, second + 60_000).toISOString()).toBe("2027-01-04T10:00:07.000Z");
  });
});

describe("unleash provider: weights and snippets", () => {
  it("rounds to per mille by largest remainder, summing to exactly 1000", () => {
    expect(toPerMille([1 / 3, 1 / 3, 1 / 3])).toEqual([334, 333, 333]);
    expect(toPerMille([0.3, 0.7])).toEqual([300, 700]);
    expect(toPerMille([0.29, 0.71])).toEqual([290, 710]);
    expect(toPerMille([1, 0, 0])).toEqual([1000, 0, 0]);
    expect(toPerMille([0.0005, 0.9995])).toEqual([1, 999]);
    for (let n = 2; n <= 7; n++) {
      const raw = Array.from({ length: n }, (_, i) => (i * 7919) % 13 || 1);
      const total = raw.reduce((a, b) => a + b, 0);
      const fractions = raw.map((r) => r / total);
      const perMille = toPerMille(fractions);
      expect(perMille.reduce((a, b) => a + b, 0)).toBe(1000);
      for (const [i, w] of perMille.entries()) expect(Math.abs(w - fractions[i]! * 1000)).toBeLessThan(1);
    }
  });

  it("gives the official SDK's code per language, branching by arm name", () => {
    const three: FlagTarget = { ...flag, arms: [...flag.arms, { name: "bold", weight: 0 }] };
    const sdk = { typescript: '"unleash-client"', python: "from UnleashClient import", go: "unleash-client-go/v4" };
    for (const language of SNIPPET_LANGUAGES) {
      const code = unleashProvider.snippet(language, three);
      expect(code).toContain(sdk[language]);
      expect(code).toContain(`"${flag.key}"`);
      for (const arm of ["treatment", "bold"]) expect(code).toContain(`"${arm}"`);
      expect(code).toContain('"control"');
    }
    const typescript = ts.transpileModule(unleashProvider.snippet("typescript", three), { reportDiagnostics: true });
    expect(typescript.diagnostics ?? []).toEqual([]);
    expect(unleashProvider.snippet("python", three)).toContain('client.get_variant("outcome-runtime-checkout"');
    expect(unleashProvider.snippet("go", three)).toContain("unleash.WithVariantContext(");
    // An arm name that would end a comment or a line stays inside its string literal.
    const odd: FlagTarget = { ...flag, arms: [...flag.arms, { name: 'odd */ "x"\ny', weight: 0 }] };
    const oddCode = ts.transpileModule(unleashProvider.snippet("typescript", odd), { reportDiagnostics: true });
    expect(oddCode.diagnostics ?? []).toEqual([]);
    expect(oddCode.outputText).toContain('case "odd */ \\"x\\"\\ny":');
  });
});
