/**
 * The processes read their whole configuration at boot: with problems in
 * several groups (their own variables, signal sources, the LLM gateway, gate
 * emails, outbound HTTP), the API and the worker exit 78 (EX_CONFIG) before
 * connecting to anything, listing every problem on standard error, with no
 * secret in it. `OUTBOUND_ALLOW` used to fail only at the first outbound call.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { root } from "./support/compose";

/** Nothing of the test runner's environment leaks in: only what node and tsx need, and `env`. */
function boot(main: string, env: Record<string, string>) {
  const result = spawnSync(process.execPath, ["--import", "tsx", main], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    encoding: "utf8",
    timeout: 90_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Problems in every group both processes read; DATABASE_URL is missing. */
const SHARED_PROBLEMS = {
  REDIS_URL: "localhost:6379",
  OUTCOME_RUNTIME_PUBLIC_URL: "https://outcomes.example.com/?tab=gates",
  SOURCE_ENV_WORKSPACES: "not-a-variable",
  OUTCOME_RUNTIME_SECRETS_KEY: "hunter2-secret-key",
  OUTCOME_RUNTIME_LLM_PROVIDER: "gemini",
  LLM_MONTHLY_BUDGET_USD: "ten",
  OUTBOUND_ALLOW: "10.0.0.0/99, bad_host!",
};

/** The first word of each listed problem line (`  - NAME...`). */
function listed(stderr: string): string[] {
  return [...stderr.matchAll(/^ {2}- ([A-Z][A-Z0-9_]*)/gm)].map((m) => m[1]!);
}

describe("a process with a bad configuration", () => {
  it("the API exits 78 listing every problem of every group it reads", () => {
    const result = boot("services/api/src/server.ts", { ...SHARED_PROBLEMS, PORT: "eighty" });
    expect(result.code, result.stderr).toBe(78);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/^invalid configuration:\n/);
    expect(listed(result.stderr)).toEqual([
      "DATABASE_URL",
      "REDIS_URL",
      "OUTCOME_RUNTIME_PUBLIC_URL",
      "PORT",
      "SOURCE_ENV_WORKSPACES",
      "OUTCOME_RUNTIME_SECRETS_KEY",
      "OUTCOME_RUNTIME_LLM_PROVIDER",
      "LLM_MONTHLY_BUDGET_USD",
      "OUTBOUND_ALLOW",
      "OUTBOUND_ALLOW",
    ]);
    expect(result.stderr).toContain("See .env.example for every variable.");
    expect(result.stderr).not.toContain("hunter2");
  });

  it("the worker exits 78 listing every problem of every group it reads, mail included", () => {
    const result = boot("services/worker/src/main.ts", {
      ...SHARED_PROBLEMS,
      WORKER_CONCURRENCY: "zero",
      SMTP_URL: "http://gates:hunter2@mail.example.com",
      MAIL_LOG_LINKS: "yes",
    });
    expect(result.code, result.stderr).toBe(78);
    expect(result.stdout).toBe("");
    expect(listed(result.stderr)).toEqual([
      "DATABASE_URL",
      "REDIS_URL",
      "OUTCOME_RUNTIME_PUBLIC_URL",
      "WORKER_CONCURRENCY",
      "SOURCE_ENV_WORKSPACES",
      "OUTCOME_RUNTIME_SECRETS_KEY",
      "OUTCOME_RUNTIME_LLM_PROVIDER",
      "LLM_MONTHLY_BUDGET_USD",
      "SMTP_URL",
      "MAIL_LOG_LINKS",
      "OUTBOUND_ALLOW",
      "OUTBOUND_ALLOW",
    ]);
    expect(result.stderr).not.toContain("hunter2");
  });
});
