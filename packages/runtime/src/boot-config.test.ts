import { Type } from "typebox";
import { describe, expect, it } from "vitest";
import { readBootConfig } from "./boot-config";
import { ConfigError, SHARED_ENV } from "./env-config";

const schema = Type.Object({
  ...SHARED_ENV,
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: "HTTP port" }),
});
const ALL = ["sources", "llm", "mail", "outbound"] as const;
const valid = { DATABASE_URL: "postgres://postgres@127.0.0.1:5432/x", REDIS_URL: "redis://127.0.0.1:6379" };

function problemsOf(env: Record<string, string>, groups: readonly (typeof ALL)[number][] = ALL): readonly string[] {
  try {
    readBootConfig(env, { schema, groups });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("readBootConfig", () => {
  it("returns the schema's variables with each group's settings under its name", () => {
    const config = readBootConfig(
      { ...valid, OUTBOUND_ALLOW: "10.0.0.0/8", LLM_MONTHLY_BUDGET_USD: "50", MAIL_LOG_LINKS: "true" },
      { schema, groups: ALL },
    );
    expect(config).toMatchObject({ ...valid, PORT: 8080, HOST: "127.0.0.1", QUEUE_PREFIX: "outcome-runtime" });
    expect(config.llm).toMatchObject({ provider: "rules", monthlyWorkspaceBudgetUsd: 50 });
    expect(config.mail.mode).toBe("log");
    expect(config.outbound.source).toBe("10.0.0.0/8");
    expect(config.sources.envWorkspaces).toBeNull();
  });

  it("reads only the groups asked for", () => {
    const config = readBootConfig({ ...valid, SMTP_URL: "not a url" }, { schema, groups: ["llm"] });
    expect(Object.keys(config)).toContain("llm");
    expect(Object.keys(config)).not.toContain("mail");
  });

  it("lists every problem of the schema and of every group at once, secrets and passwords hidden", () => {
    const problems = problemsOf({
      REDIS_URL: "localhost:6379",
      OUTBOUND_ALLOW: "10.0.0.0/99, mixpanel.internal, bad_host!",
      OUTCOME_RUNTIME_LLM_PROVIDER: "gemini",
      LLM_MONTHLY_BUDGET_USD: "ten",
      SMTP_URL: "http://gates:hunter2@mail.example.com",
      MAIL_LOG_LINKS: "yes",
      SOURCE_ENV_WORKSPACES: "not-a-variable",
      OUTCOME_RUNTIME_SECRETS_KEY: "too-short",
    });
    expect(problems.map((p) => /^[A-Z_]+/.exec(p)?.[0])).toEqual([
      "DATABASE_URL",
      "REDIS_URL",
      "SOURCE_ENV_WORKSPACES",
      "OUTCOME_RUNTIME_SECRETS_KEY",
      "OUTCOME_RUNTIME_LLM_PROVIDER",
      "LLM_MONTHLY_BUDGET_USD",
      "SMTP_URL",
      "MAIL_LOG_LINKS",
      "OUTBOUND_ALLOW",
      "OUTBOUND_ALLOW",
    ]);
    expect(problems).toContain('OUTBOUND_ALLOW: "bad_host!" is neither a host name, an IP nor a CIDR');
    expect(problems.join("\n")).not.toMatch(/hunter2|too-short/);
  });

  it("reports a public URL the shared schema refuses once, not again from the mail settings", () => {
    const problems = problemsOf({ ...valid, OUTCOME_RUNTIME_PUBLIC_URL: "https://outcomes.example.com/?tab=gates" });
    expect(problems).toEqual([expect.stringMatching(/^OUTCOME_RUNTIME_PUBLIC_URL="https:\/\/outcomes/)]);
    expect(
      readBootConfig(
        { ...valid, OUTCOME_RUNTIME_PUBLIC_URL: "https://outcomes.example.com/runtime/" },
        { schema, groups: ALL },
      ).mail.publicUrl,
    ).toBe("https://outcomes.example.com/runtime");
  });

  it("refuses a public URL with credentials, another scheme or no host", () => {
    for (const url of ["https://user:pw@outcomes.example.com", "ftp://outcomes.example.com", "https://", "/relative"]) {
      expect(problemsOf({ ...valid, OUTCOME_RUNTIME_PUBLIC_URL: url }, []), url).toEqual([
        expect.stringMatching(/^OUTCOME_RUNTIME_PUBLIC_URL=.* is not valid/),
      ]);
    }
  });
});
