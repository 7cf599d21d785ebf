import { describe, expect, it } from "vitest";
import { LlmConfigError, llmConfigFromEnv } from "./config";

function errorOf(fn: () => unknown): LlmConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof LlmConfigError) return error;
    throw error;
  }
  throw new Error("expected an LlmConfigError");
}

describe("llmConfigFromEnv", () => {
  it("serves rules with no provider configured", () => {
    const config = llmConfigFromEnv({});
    expect(config.provider).toBe("rules");
    expect(config.models.generate_hypotheses).toBe("rules");
    expect(config.monthlyWorkspaceBudgetUsd).toBeNull();
    expect(config.dailyUserBudgetUsd).toBeNull();
    expect(config.warnAtFraction).toBe(0.8);
  });

  it("picks anthropic from its key, with a strong model for hypotheses and a cheap one for summaries", () => {
    const config = llmConfigFromEnv({ ANTHROPIC_API_KEY: "k", OPENAI_API_KEY: "o" });
    expect(config.provider).toBe("anthropic");
    expect(config.models).toEqual({
      generate_hypotheses: "claude-sonnet-4-5",
      repair_output: "claude-sonnet-4-5",
      summarize_learning: "claude-haiku-4-5",
      draft_outcome: "claude-sonnet-4-5",
    });
    expect(config.prices["claude-haiku-4-5"]).toEqual({ input: 1, output: 5 });
  });

  it("picks openai-compatible from OPENAI_BASE_URL alone (a local Ollama needs no key)", () => {
    const config = llmConfigFromEnv({
      OPENAI_BASE_URL: "http://localhost:11434/v1/",
      OUTCOME_RUNTIME_LLM_MODELS: "generate_hypotheses=llama3.1, summarize_learning=llama3.1",
      OUTCOME_RUNTIME_LLM_PRICES: '{"llama3.1": {"input": 0, "output": 0}}',
    });
    expect(config.provider).toBe("openai-compatible");
    expect(config.openai).toEqual({ apiKey: undefined, baseURL: "http://localhost:11434/v1" });
    expect(config.models.generate_hypotheses).toBe("llama3.1");
    expect(config.models.draft_outcome).toBe("gpt-4o");
    expect(config.prices["llama3.1"]).toEqual({ input: 0, output: 0 });
  });

  it("reads models as JSON and budgets as numbers", () => {
    const config = llmConfigFromEnv({
      ANTHROPIC_API_KEY: "k",
      OUTCOME_RUNTIME_LLM_MODELS: '{"generate_hypotheses": "claude-opus-4-1"}',
      LLM_MONTHLY_BUDGET_USD: "50",
      LLM_DAILY_USER_BUDGET_USD: "2.5",
    });
    expect(config.models.generate_hypotheses).toBe("claude-opus-4-1");
    expect(config.monthlyWorkspaceBudgetUsd).toBe(50);
    expect(config.dailyUserBudgetUsd).toBe(2.5);
  });

  it.each([
    [{ OUTCOME_RUNTIME_LLM_PROVIDER: "anthropic" }, "ANTHROPIC_API_KEY"],
    [{ OUTCOME_RUNTIME_LLM_PROVIDER: "openai-compatible" }, "OPENAI_API_KEY"],
    [{ OUTCOME_RUNTIME_LLM_PROVIDER: "gemini" }, "OUTCOME_RUNTIME_LLM_PROVIDER"],
    [{ LLM_MONTHLY_BUDGET_USD: "ten" }, "LLM_MONTHLY_BUDGET_USD"],
    [{ LLM_DAILY_USER_BUDGET_USD: "-1" }, "LLM_DAILY_USER_BUDGET_USD"],
    [{ OPENAI_BASE_URL: "localhost:11434" }, "OPENAI_BASE_URL"],
    [{ OUTCOME_RUNTIME_LLM_MODELS: "write_poems=gpt-4o" }, "OUTCOME_RUNTIME_LLM_MODELS"],
    [{ OUTCOME_RUNTIME_LLM_MODELS: "generate_hypotheses" }, "OUTCOME_RUNTIME_LLM_MODELS"],
    [{ OUTCOME_RUNTIME_LLM_PRICES: '{"m": {"input": 1}}' }, "OUTCOME_RUNTIME_LLM_PRICES"],
    [{ OUTCOME_RUNTIME_LLM_TIMEOUT_MS: "1.5" }, "OUTCOME_RUNTIME_LLM_TIMEOUT_MS"],
  ])("names the variable at fault: %j", (env, variable) => {
    const error = errorOf(() => llmConfigFromEnv(env));
    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable}: `)).toBe(true);
    expect(error.code).toBe("llm_config_invalid");
    expect(error.problems).toEqual([{ variable, message: error.message.slice(variable.length + 2) }]);
  });

  it("names every variable at fault at once, in reading order", () => {
    const error = errorOf(() =>
      llmConfigFromEnv({
        OUTCOME_RUNTIME_LLM_PROVIDER: "anthropic",
        OPENAI_BASE_URL: "localhost:11434",
        OUTCOME_RUNTIME_LLM_PRICES: "{",
        OUTCOME_RUNTIME_LLM_TIMEOUT_MS: "soon",
        LLM_DAILY_USER_BUDGET_USD: "-1",
      }),
    );
    expect(error.variable).toBe("OPENAI_BASE_URL");
    expect(error.problems.map((p) => p.variable)).toEqual([
      "OPENAI_BASE_URL",
      "ANTHROPIC_API_KEY",
      "OUTCOME_RUNTIME_LLM_PRICES",
      "OUTCOME_RUNTIME_LLM_TIMEOUT_MS",
      "LLM_DAILY_USER_BUDGET_USD",
    ]);
    expect(error.message.split("\n")).toHaveLength(5);
  });
});

describe("embedding settings", () => {
  it("are off without OUTCOME_RUNTIME_EMBEDDING_MODEL (full-text search only)", () => {
    expect(llmConfigFromEnv({}).embedding).toBeNull();
    expect(llmConfigFromEnv({ OPENAI_API_KEY: "o" }).embedding).toBeNull();
  });

  it("know the length of well-known models, and do not send it (ada-002 refuses `dimensions`)", () => {
    expect(
      llmConfigFromEnv({ OPENAI_API_KEY: "o", OUTCOME_RUNTIME_EMBEDDING_MODEL: "text-embedding-3-small" }).embedding,
    ).toEqual({
      model: "text-embedding-3-small",
      dimensions: 1536,
      sendDimensions: false,
      baseURL: "https://api.openai.com/v1",
      apiKey: "o",
      minSimilarity: 0.3,
    });
  });

  it("take a local server (Ollama) with no key, its own base URL before OPENAI_BASE_URL, and a set length is sent", () => {
    const embedding = llmConfigFromEnv({
      ANTHROPIC_API_KEY: "k",
      OPENAI_BASE_URL: "http://127.0.0.1:8000/v1",
      OUTCOME_RUNTIME_EMBEDDING_MODEL: "nomic-embed-text",
      OUTCOME_RUNTIME_EMBEDDING_BASE_URL: "http://localhost:11434/v1/",
      OUTCOME_RUNTIME_EMBEDDING_DIMENSIONS: "512",
      OUTCOME_RUNTIME_EMBEDDING_MIN_SIMILARITY: "0.55",
    }).embedding;
    expect(embedding).toEqual({
      model: "nomic-embed-text",
      dimensions: 512,
      sendDimensions: true,
      baseURL: "http://localhost:11434/v1",
      apiKey: undefined,
      minSimilarity: 0.55,
    });
  });

  it.each([
    [{ OUTCOME_RUNTIME_EMBEDDING_MODEL: "my-model", OPENAI_API_KEY: "o" }, "OUTCOME_RUNTIME_EMBEDDING_DIMENSIONS"],
    [{ OUTCOME_RUNTIME_EMBEDDING_MODEL: "text-embedding-3-small" }, "OUTCOME_RUNTIME_EMBEDDING_API_KEY"],
    [
      {
        OUTCOME_RUNTIME_EMBEDDING_MODEL: "text-embedding-3-small",
        OPENAI_API_KEY: "o",
        OUTCOME_RUNTIME_EMBEDDING_DIMENSIONS: "0",
      },
      "OUTCOME_RUNTIME_EMBEDDING_DIMENSIONS",
    ],
    [{ OUTCOME_RUNTIME_EMBEDDING_BASE_URL: "localhost:11434" }, "OUTCOME_RUNTIME_EMBEDDING_BASE_URL"],
    [{ OUTCOME_RUNTIME_EMBEDDING_MIN_SIMILARITY: "2" }, "OUTCOME_RUNTIME_EMBEDDING_MIN_SIMILARITY"],
  ])("name the variable at fault: %j", (env, variable) => {
    const error = errorOf(() => llmConfigFromEnv(env));
    expect(error.variable).toBe(variable);
    expect(error.problems).toHaveLength(1);
  });
});
