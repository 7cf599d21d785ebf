/**
 * The LLM providers hold their base URL to the outbound policy: a base URL on
 * the metadata service, a private range or (in production) loopback is refused
 * before any request, as a non-retryable client error naming OUTBOUND_ALLOW.
 */
import { parseOutboundPolicy } from "@outcome-runtime/netguard";
import { describe, expect, it } from "vitest";
import { createAnthropicProvider } from "./anthropic.provider";
import { createOpenAiCompatibleProvider } from "./openai-compatible.provider";
import { ProviderError, type ProviderRequest } from "./provider";

const request: ProviderRequest = {
  model: "m",
  system: "s",
  user: "u",
  outputName: "out",
  outputSchema: { type: "object" },
  maxOutputTokens: 10,
  timeoutMs: 2_000,
};

const production = parseOutboundPolicy("");
const hostile = [
  "http://169.254.169.254/v1",
  "http://[::ffff:a9fe:a9fe]/v1",
  "http://0x0a000001/v1",
  "http://127.1:11434/v1",
];

async function refusal(promise: Promise<unknown>): Promise<ProviderError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ProviderError);
  return error as ProviderError;
}

describe("LLM base URLs under the outbound policy", () => {
  it.each(hostile)("openai-compatible refuses %s", async (baseURL) => {
    const provider = createOpenAiCompatibleProvider({ baseURL, outboundPolicy: production });
    const error = await refusal(provider.complete(request));
    expect(error.kind).toBe("client_error");
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/not a public address; .*OUTBOUND_ALLOW/u);
  });

  it.each(hostile)("anthropic refuses %s", async (baseURL) => {
    const provider = createAnthropicProvider({ apiKey: "k", baseURL, outboundPolicy: production });
    const error = await refusal(provider.complete(request));
    expect(error.kind).toBe("client_error");
    expect(error.message).toMatch(/not a public address; .*OUTBOUND_ALLOW/u);
  });
});
