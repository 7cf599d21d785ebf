import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config";

const valid = {
  DATABASE_URL: "postgres://postgres@127.0.0.1:5432/outcome_runtime",
  REDIS_URL: "redis://127.0.0.1:6379",
};

function problemsOf(env: NodeJS.ProcessEnv): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("applies defaults and coerces numbers", () => {
    expect(loadConfig({ ...valid, PORT: "9090" })).toMatchObject({
      ...valid,
      PORT: 9090,
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      RATE_LIMIT_PER_MINUTE: 1200,
    });
  });

  it("reads CONNECTOR_MODULES (the connectors of the operator's own) with the source settings", () => {
    expect(loadConfig(valid).sources.connectorModules).toBeUndefined();
    expect(
      loadConfig({ ...valid, CONNECTOR_MODULES: "@acme/outcome-connector-foo, other-pkg" }).sources.connectorModules,
    ).toEqual(["@acme/outcome-connector-foo", "other-pkg"]);
    const problems = problemsOf({ ...valid, PORT: "x", CONNECTOR_MODULES: "./relative.mjs" });
    expect(problems.some((p) => p.startsWith("PORT="))).toBe(true);
    expect(problems).toContain(
      'CONNECTOR_MODULES: "./relative.mjs" is not a package name or an absolute path; list installed packages (or absolute paths) separated by commas, e.g. CONNECTOR_MODULES=@acme/outcome-connector-metrics,other-connector',
    );
  });

  it("names every missing variable at once, with what to write", () => {
    const problems = problemsOf({});
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^DATABASE_URL is not set: Postgres URL, e\.g\. postgres:\/\//);
    expect(problems[1]).toMatch(/^REDIS_URL is not set: Redis URL/);
  });

  it("never prints a password", () => {
    const problems = problemsOf({ ...valid, DATABASE_URL: "mysql://app:s3cret@db/x" });
    expect(problems[0]).toContain('DATABASE_URL="mysql://app:***@db/x"');
    expect(problems.join()).not.toContain("s3cret");
  });

  it("caches principals for 30 s by default, 0 turning it off, at most 5 minutes", () => {
    expect(loadConfig(valid).AUTH_CACHE_TTL_MS).toBe(30_000);
    expect(loadConfig({ ...valid, AUTH_CACHE_TTL_MS: "0" }).AUTH_CACHE_TTL_MS).toBe(0);
    expect(problemsOf({ ...valid, AUTH_CACHE_TTL_MS: "600000" })).toEqual([
      expect.stringMatching(/^AUTH_CACHE_TTL_MS="600000" is not valid/),
    ]);
  });

  it("serves metrics only on a port of their own", () => {
    expect(loadConfig(valid).METRICS_PORT).toBeUndefined();
    expect(loadConfig({ ...valid, METRICS_PORT: "9464" }).METRICS_PORT).toBe(9464);
    expect(problemsOf({ ...valid, METRICS_PORT: "8080" })).toEqual([
      expect.stringMatching(/^METRICS_PORT is the same as PORT: metrics are never served on the public port/),
    ]);
    expect(problemsOf({ ...valid, PORT: "9000", METRICS_PORT: "0" })).toEqual([
      expect.stringMatching(/^METRICS_PORT="0" is not valid/),
    ]);
  });

  it("parses the source, LLM, outbound and mail settings at boot (mail: sign-in links and invitations)", () => {
    const config = loadConfig({
      ...valid,
      OUTBOUND_ALLOW: "10.0.0.0/8",
      ANTHROPIC_API_KEY: "sk-ant-x",
      SMTP_URL: "smtp://mail.example:587",
    });
    expect(config.outbound.source).toBe("10.0.0.0/8");
    expect(config.llm.provider).toBe("anthropic");
    expect(config.sources.envWorkspaces).toBeNull();
    expect(config.mail.mode).toBe("smtp");
    expect(problemsOf({ ...valid, SMTP_URL: "x" })).toEqual([expect.stringMatching(/^SMTP_URL=x is not a valid URL/)]);
  });

  it("turns accounts on with the secret, and single sign-on needs all of its settings", () => {
    expect(loadConfig(valid).OUTCOME_RUNTIME_AUTH_SECRET).toBeUndefined();
    expect(problemsOf({ ...valid, OUTCOME_RUNTIME_AUTH_SECRET: "short" })).toEqual([
      expect.stringMatching(/^OUTCOME_RUNTIME_AUTH_SECRET/),
    ]);
    expect(problemsOf({ ...valid, OUTCOME_RUNTIME_OIDC_ISSUER: "https://acme.okta.com" })).toEqual([
      expect.stringContaining("missing OUTCOME_RUNTIME_OIDC_CLIENT_ID, OUTCOME_RUNTIME_OIDC_CLIENT_SECRET"),
      expect.stringContaining("single sign-on needs OUTCOME_RUNTIME_AUTH_SECRET"),
    ]);
    const sso = loadConfig({
      ...valid,
      OUTCOME_RUNTIME_AUTH_SECRET: "x".repeat(32),
      OUTCOME_RUNTIME_OIDC_ISSUER: "https://acme.okta.com",
      OUTCOME_RUNTIME_OIDC_CLIENT_ID: "client",
      OUTCOME_RUNTIME_OIDC_CLIENT_SECRET: "secret",
      OUTCOME_RUNTIME_OIDC_ALLOWED_DOMAINS: " Acme.example , ,acme.io",
      OUTCOME_RUNTIME_ADMIN_EMAILS: "Ada@Acme.example",
    });
    expect(sso.OUTCOME_RUNTIME_OIDC_DEFAULT_ROLE).toBe("member");
    expect(sso.OUTCOME_RUNTIME_OIDC_WORKSPACE).toBe("default");
    expect(problemsOf({ ...valid, OUTCOME_RUNTIME_OIDC_DEFAULT_ROLE: "agent" })).toEqual([
      expect.stringMatching(/^OUTCOME_RUNTIME_OIDC_DEFAULT_ROLE/),
    ]);
  });

  it("lists its own problems and those of every group it reads at once", () => {
    const problems = problemsOf({
      ...valid,
      PORT: "eighty",
      OUTBOUND_ALLOW: "10.0.0.0/99",
      OPENAI_BASE_URL: "localhost:11434",
      SOURCE_API_URLS: "mixpanel",
      OUTCOME_RUNTIME_PUBLIC_URL: "https://outcomes.example.com/#/gates",
    });
    expect(problems.map((p) => /^[A-Z_]+/.exec(p)?.[0])).toEqual([
      "OUTCOME_RUNTIME_PUBLIC_URL",
      "PORT",
      "SOURCE_API_URLS",
      "OPENAI_BASE_URL",
      "OUTBOUND_ALLOW",
    ]);
  });

  it("treats empty strings as unset", () => {
    expect(problemsOf({ ...valid, DATABASE_URL: "  " })).toEqual([expect.stringMatching(/^DATABASE_URL is not set/)]);
  });

  it("names malformed variables with their value", () => {
    const problems = problemsOf({
      ...valid,
      PORT: "eighty",
      REDIS_URL: "localhost:6379",
      OUTCOME_RUNTIME_API_KEY: "short",
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^PORT="eighty" is not valid/),
        expect.stringMatching(/^REDIS_URL="localhost:6379" is not valid/),
        expect.stringMatching(
          /^OUTCOME_RUNTIME_API_KEY=\(hidden, 5 characters\) is not valid .*at least 24 characters/,
        ),
      ]),
    );
  });
});
