/**
 * A local OpenAI-compatible embeddings server, for tests of semantic search.
 *
 * It follows OpenAI's API reference, "Embeddings: Create embeddings"
 * (https://platform.openai.com/docs/api-reference/embeddings/create, API v1),
 * which Ollama's OpenAI compatibility layer also serves at `/v1/embeddings`
 * (https://github.com/ollama/ollama/blob/main/docs/openai.md, "/v1/embeddings"):
 *
 * - `POST /v1/embeddings`, JSON body `{ model, input, dimensions?, encoding_format?, user? }`;
 *   `input` is a string or an array of strings (at most 2048, none empty);
 *   `encoding_format` is `float` (default) or `base64` (little-endian float32);
 *   `dimensions` shortens the vector (re-normalised), up to the model's length.
 * - 200: `{ object: "list", data: [{ object: "embedding", index, embedding }], model,
 *   usage: { prompt_tokens, total_tokens } }`, one item per input in input order.
 * - Errors: `{ error: { message, type, param, code } }`: 400 `invalid_request_error` for a
 *   malformed body, 404 `model_not_found` for an unknown model, 401 without the expected key.
 *
 * Its semantics, so that tests are deterministic: a text's vector is the sum of
 * one axis per *concept* its words name, through a small fixed synonym table
 * ({@link CONCEPTS}: "speed", "latency", "slow", "load time" share an axis;
 * "checkout", "payment", "cart" another; …), plus a small weight (0.1) per
 * other word on an axis picked by hashing the word among the remaining ones
 * (stop words ignored), normalised to length 1. So "site speed" and "latency
 * of the product page" are close (cosine ≈ 0.7) although they share no word,
 * and texts naming different concepts are nearly orthogonal (a shared
 * non-concept word adds about 0.01). Its model is {@link FAKE_EMBEDDING_MODEL},
 * {@link FAKE_EMBEDDING_DIMENSIONS} long.
 *
 * Tests script failures per request (`enqueue`): an HTTP error, a hang, a
 * vector of the wrong length, a non-finite number.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** The fake's one model. */
export const FAKE_EMBEDDING_MODEL = "fake-embed-small";
/** Its native vector length (a request may ask for fewer with `dimensions`). */
export const FAKE_EMBEDDING_DIMENSIONS = 32;

/** The synonym table: each row is one concept, one axis of the vector (in this order). */
export const CONCEPTS: readonly (readonly string[])[] = [
  ["speed", "fast", "faster", "slow", "slower", "latency", "load", "loading", "loads", "performance", "quick", "lag"],
  ["checkout", "payment", "payments", "pay", "cart", "basket", "purchase", "card"],
  ["price", "prices", "pricing", "discount", "cost", "coupon", "plan", "plans"],
  ["trust", "review", "reviews", "rating", "ratings", "badge", "guarantee"],
  ["search", "filter", "filters", "query", "find"],
  ["onboarding", "signup", "register", "registration", "welcome", "tutorial"],
  ["headline", "copy", "wording", "banner", "message", "tagline"],
  ["delivery", "shipping", "ship", "dispatch", "arrival"],
  ["image", "images", "photo", "photos", "picture", "video"],
  ["email", "emails", "newsletter", "notification", "notifications", "reminder"],
  ["mobile", "phone", "app", "ios", "android"],
  ["churn", "cancel", "cancellation", "retention", "unsubscribe"],
];

const STOP_WORDS = new Set(
  "a an and are as at be by for from in into is it its of on or our the their this to was were with we".split(" "),
);

const OTHER_WORD_WEIGHT = 0.1;

/** The fake's vector of `text` at its native length, normalised (all zeros for a text with no word). */
export function fakeEmbedding(text: string): number[] {
  const vector = new Array<number>(FAKE_EMBEDDING_DIMENSIONS).fill(0);
  const words = text.toLowerCase().match(/[a-z0-9]+/g) ?? [];
  for (const word of words) {
    if (STOP_WORDS.has(word)) continue;
    const concept = CONCEPTS.findIndex((synonyms) => synonyms.includes(word));
    if (concept >= 0) {
      vector[concept] = (vector[concept] ?? 0) + 1;
    } else {
      const spare = FAKE_EMBEDDING_DIMENSIONS - CONCEPTS.length;
      const axis = CONCEPTS.length + (createHash("sha256").update(word).digest().readUInt32BE(0) % spare);
      vector[axis] = (vector[axis] ?? 0) + OTHER_WORD_WEIGHT;
    }
  }
  return normalised(vector);
}

function normalised(vector: number[]): number[] {
  const norm = Math.sqrt(vector.reduce((s, x) => s + x * x, 0));
  return norm === 0 ? vector : vector.map((x) => x / norm);
}

export interface EmbeddingsRequest {
  readonly headers: IncomingHttpHeaders;
  // biome-ignore lint/suspicious/noExplicitAny: request bodies are inspected freely by the tests
  readonly body: any;
}

/** One scripted answer, used instead of the computed one for the next request. */
export type EmbeddingsReply =
  /** An HTTP error with OpenAI's error body. */
  | { readonly kind: "error"; readonly status: number; readonly message?: string }
  /** Never answer (the client's timeout fires). */
  | { readonly kind: "hang" }
  /** Vectors of this length, whatever was asked. */
  | { readonly kind: "wrong_length"; readonly length: number }
  /** A vector holding a value JSON cannot carry as a number (`null` where NaN would be). */
  | { readonly kind: "not_finite" };

export interface FakeEmbeddings {
  /** `http://127.0.0.1:<port>/v1`: the base URL to configure. */
  readonly baseURL: string;
  /** Every request received, in order. */
  readonly requests: EmbeddingsRequest[];
  /** Script the answers of the next requests (then the computed answers resume). */
  enqueue(...replies: EmbeddingsReply[]): void;
  close(): Promise<void>;
}

function openAiError(status: number, message: string, code: string | null, param: string | null = null) {
  const type = status === 401 ? "invalid_request_error" : status >= 500 ? "server_error" : "invalid_request_error";
  return { status, body: { error: { message, type, param, code } } };
}

/** Start the fake; `apiKey`, when given, must come as `Authorization: Bearer <apiKey>`. */
export async function startFakeEmbeddings(options: { apiKey?: string } = {}): Promise<FakeEmbeddings> {
  const requests: EmbeddingsRequest[] = [];
  const replies: EmbeddingsReply[] = [];
  const hanging = new Set<import("node:http").ServerResponse>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      if (req.method !== "POST" || req.url !== "/v1/embeddings") {
        const e = openAiError(404, `Invalid URL (${req.method} ${req.url})`, null);
        return send(e.status, e.body);
      }
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        const e = openAiError(400, "We could not parse the JSON body of your request.", null);
        return send(e.status, e.body);
      }
      requests.push({ headers: req.headers, body });
      if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
        const e = openAiError(401, "Incorrect API key provided.", "invalid_api_key");
        return send(e.status, e.body);
      }
      const reply = replies.shift();
      if (reply?.kind === "hang") {
        hanging.add(res);
        return;
      }
      if (reply?.kind === "error") {
        const e = openAiError(reply.status, reply.message ?? "The server had an error processing your request.", null);
        return send(e.status, e.body);
      }
      const answer = embeddingsAnswer(body, reply);
      return send(answer.status, answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    enqueue: (...more) => {
      replies.push(...more);
    },
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function embeddingsAnswer(body: unknown, reply: EmbeddingsReply | undefined): { status: number; body: unknown } {
  const b = (body ?? {}) as { model?: unknown; input?: unknown; dimensions?: unknown; encoding_format?: unknown };
  if (typeof b.model !== "string" || b.model === "") {
    return openAiError(400, "you must provide a model parameter", null, "model");
  }
  if (b.model !== FAKE_EMBEDDING_MODEL) {
    return openAiError(
      404,
      `The model \`${b.model}\` does not exist or you do not have access to it.`,
      "model_not_found",
    );
  }
  const inputs = typeof b.input === "string" ? [b.input] : b.input;
  if (
    !Array.isArray(inputs) ||
    inputs.length === 0 ||
    inputs.length > 2048 ||
    inputs.some((s) => typeof s !== "string" || s === "")
  ) {
    return openAiError(
      400,
      "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
      null,
      "input",
    );
  }
  const format = b.encoding_format ?? "float";
  if (format !== "float" && format !== "base64") {
    return openAiError(400, `Invalid value for 'encoding_format': '${String(format)}'.`, null, "encoding_format");
  }
  let length = FAKE_EMBEDDING_DIMENSIONS;
  if (b.dimensions !== undefined) {
    if (
      typeof b.dimensions !== "number" ||
      !Number.isInteger(b.dimensions) ||
      b.dimensions < 1 ||
      b.dimensions > FAKE_EMBEDDING_DIMENSIONS
    ) {
      return openAiError(
        400,
        `Invalid value for 'dimensions' = ${String(b.dimensions)}. Must be between 1 and ${FAKE_EMBEDDING_DIMENSIONS}.`,
        null,
        "dimensions",
      );
    }
    length = b.dimensions;
  }
  const data = (inputs as string[]).map((text, index) => {
    let vector = normalised(fakeEmbedding(text).slice(0, length));
    if (reply?.kind === "wrong_length") vector = new Array<number>(reply.length).fill(1 / Math.sqrt(reply.length));
    const embedding: unknown =
      reply?.kind === "not_finite"
        ? vector.map((x, i) => (i === 0 ? null : x))
        : format === "base64"
          ? Buffer.from(new Float32Array(vector).buffer).toString("base64")
          : vector;
    return { object: "embedding", index, embedding };
  });
  const tokens = (inputs as string[]).reduce((sum, text) => sum + Math.ceil(text.length / 4), 0);
  return {
    status: 200,
    body: { object: "list", data, model: b.model, usage: { prompt_tokens: tokens, total_tokens: tokens } },
  };
}
