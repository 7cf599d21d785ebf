/**
 * OpenAI's embeddings API, as OpenAI, Ollama (`/v1/embeddings`, its OpenAI
 * compatibility layer) and vLLM serve it: `POST {baseURL}/embeddings` with
 * `{ model, input: string[], encoding_format: "float", dimensions? }`, answered
 * by `{ object: "list", data: [{ object: "embedding", index, embedding }], model,
 * usage: { prompt_tokens, total_tokens } }`
 * (https://platform.openai.com/docs/api-reference/embeddings/create).
 *
 * Plain `fetch` through the outbound policy, like the chat provider (the
 * `openai` package requires Node 22). The response is checked here, at the
 * boundary: one vector per input, each of the configured length, every number
 * finite; anything else is `malformed` with what is wrong, never a vector.
 */
import { guardedFetch, type OutboundPolicy } from "@outcome-runtime/netguard";
import { ProviderError, postJson } from "./provider";

interface EmbeddingRequest {
  readonly model: string;
  /** The texts, one vector each. */
  readonly input: readonly string[];
  /** The length every vector must have. */
  readonly dimensions: number;
  /** Send `dimensions` in the request (only models that can shorten their vectors accept it). */
  readonly sendDimensions: boolean;
  readonly timeoutMs: number;
}

type EmbeddingResponse =
  | { readonly vectors: number[][]; readonly malformed: null; readonly inputTokens: number }
  | { readonly vectors: null; readonly malformed: string; readonly inputTokens: number };

export interface EmbeddingProvider {
  /** @throws ProviderError for HTTP errors, timeouts, connection errors and a body that is not JSON. */
  embed(request: EmbeddingRequest): Promise<EmbeddingResponse>;
}

export interface EmbeddingProviderOptions {
  /** E.g. `https://api.openai.com/v1`, `http://localhost:11434/v1`. */
  readonly baseURL: string;
  /** Optional: a local Ollama or vLLM server needs none. */
  readonly apiKey?: string | undefined;
  /** What the base URL may reach besides public addresses (SSRF guard); default `OUTBOUND_ALLOW`. */
  readonly outboundPolicy?: OutboundPolicy | undefined;
}

/**
 * Check an embeddings response body against the request: returns the vectors
 * in input order, or a sentence naming the first field at fault.
 */
export function checkEmbeddings(
  body: unknown,
  count: number,
  dimensions: number,
): { vectors: number[][]; malformed: null } | { vectors: null; malformed: string } {
  const data = (body as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) return { vectors: null, malformed: "response has no data array" };
  if (data.length !== count) {
    return { vectors: null, malformed: `response has ${data.length} embeddings for ${count} inputs` };
  }
  const vectors: (number[] | undefined)[] = new Array(count);
  for (const [position, item] of data.entries()) {
    const index = (item as { index?: unknown } | null)?.index ?? position;
    const embedding = (item as { embedding?: unknown } | null)?.embedding;
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index >= count) {
      return { vectors: null, malformed: `data[${position}].index is ${JSON.stringify(index)}, not 0 to ${count - 1}` };
    }
    if (!Array.isArray(embedding)) {
      return {
        vectors: null,
        malformed: `data[${position}].embedding is not an array of numbers (encoding_format must be "float")`,
      };
    }
    if (embedding.length !== dimensions) {
      return {
        vectors: null,
        malformed:
          `data[${position}].embedding has ${embedding.length} numbers, expected ${dimensions} ` +
          "(OUTCOME_RUNTIME_EMBEDDING_DIMENSIONS must be the model's vector length)",
      };
    }
    const bad = embedding.findIndex((x) => typeof x !== "number" || !Number.isFinite(x));
    if (bad >= 0) {
      return {
        vectors: null,
        malformed: `data[${position}].embedding[${bad}] is ${JSON.stringify(embedding[bad]) ?? "missing"}, not a finite number`,
      };
    }
    if (vectors[index] !== undefined) return { vectors: null, malformed: `data[${position}].index ${index} repeats` };
    vectors[index] = embedding as number[];
  }
  return { vectors: vectors as number[][], malformed: null };
}

/** The embeddings client of the `embed` operation. */
export function createEmbeddingProvider(options: EmbeddingProviderOptions): EmbeddingProvider {
  const endpoint = `${options.baseURL.replace(/\/+$/, "")}/embeddings`;
  const send = guardedFetch({ policy: options.outboundPolicy });
  return {
    async embed(request: EmbeddingRequest): Promise<EmbeddingResponse> {
      const body = {
        model: request.model,
        input: request.input,
        encoding_format: "float",
        ...(request.sendDimensions ? { dimensions: request.dimensions } : {}),
      };
      const json = await postJson(send, endpoint, {
        ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
        body,
        timeoutMs: request.timeoutMs,
        label: "embeddings",
      });
      const usage = (json as { usage?: { prompt_tokens?: unknown } } | null)?.usage?.prompt_tokens;
      const inputTokens = typeof usage === "number" && Number.isFinite(usage) && usage >= 0 ? Math.round(usage) : 0;
      const checked = checkEmbeddings(json, request.input.length, request.dimensions);
      return checked.vectors === null
        ? { vectors: null, malformed: `embeddings: ${checked.malformed}`, inputTokens }
        : { vectors: checked.vectors, malformed: null, inputTokens };
    },
  };
}
