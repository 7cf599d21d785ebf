/**
 * Anthropic Messages API through `@anthropic-ai/sdk`. Structured output comes
 * through tool use: one tool whose `input_schema` is the operation's output
 * schema, forced with `tool_choice: { type: "tool", name }`; the tool call's
 * `input` is the output. The SDK's own retries are off (`maxRetries: 0`): the
 * gateway retries, so every attempt is metered and bounded the same way for
 * every provider.
 */
import Anthropic, { APIConnectionError, APIConnectionTimeoutError, APIError } from "@anthropic-ai/sdk";
import { guardedFetch, OutboundBlockedError, type OutboundPolicy } from "@outcome-runtime/netguard";
import {
  kindOfStatus,
  type LlmProvider,
  ProviderError,
  type ProviderRequest,
  type ProviderResponse,
  parseJsonText,
  retryAfterMs,
} from "./provider";

export interface AnthropicProviderOptions {
  readonly apiKey: string;
  /** Default: the SDK's (`ANTHROPIC_BASE_URL` or https://api.anthropic.com). */
  readonly baseURL?: string | undefined;
  /** What the base URL may reach besides public addresses (SSRF guard); default `OUTBOUND_ALLOW`. */
  readonly outboundPolicy?: OutboundPolicy | undefined;
}

export function createAnthropicProvider(options: AnthropicProviderOptions): LlmProvider {
  const client = new Anthropic({
    apiKey: options.apiKey,
    ...(options.baseURL === undefined ? {} : { baseURL: options.baseURL }),
    maxRetries: 0,
    // Every request, and every redirect, is checked against the outbound policy.
    fetch: guardedFetch({ policy: options.outboundPolicy }),
  });
  return {
    name: "anthropic",
    async complete(request: ProviderRequest): Promise<ProviderResponse> {
      let message: Anthropic.Message;
      try {
        message = await client.messages.create(
          {
            model: request.model,
            max_tokens: request.maxOutputTokens,
            system: request.system,
            messages: [{ role: "user", content: request.user }],
            tools: [
              {
                name: request.outputName,
                description: "Return the result. Its input is the complete answer, matching the schema exactly.",
                input_schema: request.outputSchema as Anthropic.Tool.InputSchema,
              },
            ],
            tool_choice: { type: "tool", name: request.outputName },
          },
          { timeout: request.timeoutMs, maxRetries: 0 },
        );
      } catch (error) {
        throw toProviderError(error);
      }
      const usage = { inputTokens: message.usage.input_tokens, outputTokens: message.usage.output_tokens };
      const tool = message.content.find(
        (b): b is Anthropic.ToolUseBlock => b.type === "tool_use" && b.name === request.outputName,
      );
      const text = message.content
        .filter((b): b is Anthropic.TextBlock => b.type === "text")
        .map((b) => b.text)
        .join("");
      if (message.stop_reason === "max_tokens") {
        return {
          output: undefined,
          malformed: "output truncated at max_tokens",
          raw: tool ? JSON.stringify(tool.input) : text,
          usage,
        };
      }
      if (tool !== undefined) return { output: tool.input, malformed: null, raw: JSON.stringify(tool.input), usage };
      // No tool call: accept a JSON answer in text, else report it malformed.
      const parsed = parseJsonText(text);
      return {
        output: parsed.output,
        malformed: parsed.malformed === null ? null : `no tool_use block; ${parsed.malformed}`,
        raw: text,
        usage,
      };
    },
  };
}

function toProviderError(error: unknown): ProviderError {
  const blocked = error instanceof OutboundBlockedError ? error : (error as { cause?: unknown } | null)?.cause;
  if (blocked instanceof OutboundBlockedError)
    return new ProviderError("client_error", `anthropic: ${blocked.message}`);
  if (error instanceof APIConnectionTimeoutError) return new ProviderError("timeout", "anthropic: request timed out");
  if (error instanceof APIConnectionError) {
    return new ProviderError("connection", `anthropic: connection failed: ${error.message}`);
  }
  if (error instanceof APIError && typeof error.status === "number") {
    return new ProviderError(
      kindOfStatus(error.status),
      `anthropic: HTTP ${error.status}: ${error.message}`,
      error.status,
      retryAfterMs(error.headers, Date.now()),
    );
  }
  return new ProviderError("connection", `anthropic: ${(error as Error)?.message ?? String(error)}`);
}
