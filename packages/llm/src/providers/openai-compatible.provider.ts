/**
 * Any server that speaks OpenAI's chat-completions API (OpenAI, OpenRouter,
 * Ollama, vLLM): `POST {baseURL}/chat/completions` with
 * `response_format: { type: "json_schema", json_schema: { name, schema, strict: false } }`;
 * `strict: false` because OpenAI's strict mode accepts only a subset of JSON Schema (every property
 * required, no length bounds); the gateway validates the output with ajv and repairs it instead.
 * The output is the JSON text of `choices[0].message.content`. Plain `fetch`:
 * the `openai` package requires Node 22, the runtime supports Node 20.
 */
import { guardedFetch, type OutboundPolicy } from "@outcome-runtime/netguard";
import {
  type LlmProvider,
  ProviderError,
  type ProviderRequest,
  type ProviderResponse,
  parseJsonText,
  postJson,
} from "./provider";

export interface OpenAiCompatibleProviderOptions {
  /** Optional: a local Ollama or vLLM server needs none. */
  readonly apiKey?: string | undefined;
  /** E.g. `https://api.openai.com/v1`, `http://localhost:11434/v1`. */
  readonly baseURL: string;
  /** What the base URL may reach besides public addresses (SSRF guard); default `OUTBOUND_ALLOW`. */
  readonly outboundPolicy?: OutboundPolicy | undefined;
}

interface ChatCompletion {
  choices?: { message?: { content?: string | null; refusal?: string | null }; finish_reason?: string | null }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number };
}

export function createOpenAiCompatibleProvider(options: OpenAiCompatibleProviderOptions): LlmProvider {
  const endpoint = `${options.baseURL.replace(/\/+$/, "")}/chat/completions`;
  const send = guardedFetch({ policy: options.outboundPolicy });
  return {
    name: "openai-compatible",
    async complete(request: ProviderRequest): Promise<ProviderResponse> {
      const body = {
        model: request.model,
        max_tokens: request.maxOutputTokens,
        messages: [
          { role: "system", content: request.system },
          { role: "user", content: request.user },
        ],
        response_format: {
          type: "json_schema",
          json_schema: { name: request.outputName, schema: request.outputSchema, strict: false },
        },
      };
      const json = (await postJson(send, endpoint, {
        ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
        body,
        timeoutMs: request.timeoutMs,
        label: "openai-compatible",
      })) as ChatCompletion;
      const usage = {
        inputTokens: json.usage?.prompt_tokens ?? 0,
        outputTokens: json.usage?.completion_tokens ?? 0,
      };
      const choice = json.choices?.[0];
      const refusal = choice?.message?.refusal;
      if (typeof refusal === "string" && refusal !== "") {
        return { output: undefined, malformed: `refused: ${refusal}`, raw: refusal, usage };
      }
      const text = choice?.message?.content ?? "";
      if (choice?.finish_reason === "length") {
        return { output: undefined, malformed: "output truncated at max_tokens", raw: text, usage };
      }
      const parsed = parseJsonText(text);
      return { output: parsed.output, malformed: parsed.malformed, raw: text, usage };
    },
  };
}
