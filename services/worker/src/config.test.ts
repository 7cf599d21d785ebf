import { describe, expect, it } from "vitest";
import { ConfigError, loadWorkerConfig } from "./config";

const base = { DATABASE_URL: "postgres://postgres@localhost/x", REDIS_URL: "redis://localhost:6379" };

describe("loadWorkerConfig", () => {
  it("applies defaults", () => {
    const config = loadWorkerConfig(base);
    expect(config).toMatchObject({ WORKER_PORT: 8081, WORKER_CONCURRENCY: 8, LOCK_DURATION_MS: 30_000 });
  });

  it("names every bad variable at once and hides secrets", () => {
    let error: unknown;
    try {
      loadWorkerConfig({
        REDIS_URL: "localhost",
        WORKER_CONCURRENCY: "zero",
        OUTCOME_RUNTIME_WEBHOOK_SECRET: "short",
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain("DATABASE_URL is not set");
    expect(message).toContain('REDIS_URL="localhost"');
    expect(message).toContain("WORKER_CONCURRENCY");
    expect(message).toContain("OUTCOME_RUNTIME_WEBHOOK_SECRET=(hidden, 5 characters)");
    expect(message).not.toContain("short");
  });

  it("parses the source, LLM, mail and outbound settings at boot", () => {
    const config = loadWorkerConfig({
      ...base,
      OUTBOUND_ALLOW: "mixpanel.internal",
      MAIL_LOG_LINKS: "true",
      OUTCOME_RUNTIME_PUBLIC_URL: "https://outcomes.example.com/",
    });
    expect(config.outbound.hosts).toEqual(["mixpanel.internal"]);
    expect(config.mail).toMatchObject({ mode: "log", publicUrl: "https://outcomes.example.com" });
    expect(config.llm.provider).toBe("rules");
    expect(config.sources.secretsKeyring).toBeNull();
  });

  it("lists its own problems and those of every group at once, the public URL once", () => {
    let error: unknown;
    try {
      loadWorkerConfig({
        ...base,
        WORKER_CONCURRENCY: "zero",
        SMTP_URL: "smtp://gates:hunter2@",
        MAIL_FROM: "nobody",
        OUTCOME_RUNTIME_PUBLIC_URL: "outcomes.example.com",
        LLM_BUDGET_WARN_PERCENT: "120",
        OUTBOUND_ALLOW: "bad_host!",
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems.map((p) => /^[A-Z_]+/.exec(p)?.[0])).toEqual([
      "OUTCOME_RUNTIME_PUBLIC_URL",
      "WORKER_CONCURRENCY",
      "LLM_BUDGET_WARN_PERCENT",
      "SMTP_URL",
      "MAIL_FROM",
      "OUTBOUND_ALLOW",
    ]);
    expect(problems.join("\n")).not.toContain("hunter2");
  });

  it("refuses a webhook URL without a secret", () => {
    expect(() => loadWorkerConfig({ ...base, OUTCOME_RUNTIME_WEBHOOK_URL: "http://127.0.0.1:9/hooks" })).toThrow(
      /OUTCOME_RUNTIME_WEBHOOK_SECRET is not set/,
    );
  });

  it("refuses intervals and timeouts longer than a Node.js timer takes (they would fire every millisecond)", () => {
    let error: unknown;
    try {
      loadWorkerConfig({
        ...base,
        RECONCILE_INTERVAL_MS: "3000000000",
        LOCK_DURATION_MS: "3000000000",
        POLL_TIMEOUT_MS: "3000000000",
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.split("=")[0])).toEqual([
      "RECONCILE_INTERVAL_MS",
      "LOCK_DURATION_MS",
      "POLL_TIMEOUT_MS",
    ]);
    expect(loadWorkerConfig({ ...base, RECONCILE_INTERVAL_MS: "2147483647" }).RECONCILE_INTERVAL_MS).toBe(
      2_147_483_647,
    );
  });

  it("reports a webhook URL without a secret together with the other problems", () => {
    let error: unknown;
    try {
      loadWorkerConfig({
        REDIS_URL: "redis://localhost:6379",
        OUTCOME_RUNTIME_WEBHOOK_URL: "http://127.0.0.1:9/hooks",
      });
    } catch (e) {
      error = e;
    }
    const problems = (error as ConfigError).problems;
    expect(problems.some((p) => p.startsWith("DATABASE_URL is not set"))).toBe(true);
    expect(problems.some((p) => p.startsWith("OUTCOME_RUNTIME_WEBHOOK_SECRET is not set"))).toBe(true);
  });

  it("reads CONNECTOR_MODULES and reports a repeated module with the other problems", () => {
    expect(loadWorkerConfig({ ...base, CONNECTOR_MODULES: "/opt/connectors/metrics.mjs" }).sources).toMatchObject({
      connectorModules: ["/opt/connectors/metrics.mjs"],
    });
    let error: unknown;
    try {
      loadWorkerConfig({ ...base, WORKER_CONCURRENCY: "zero", CONNECTOR_MODULES: "a-connector,a-connector" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      expect.stringMatching(/^WORKER_CONCURRENCY/),
      'CONNECTOR_MODULES: "a-connector" is listed twice; list it once',
    ]);
  });
});
