/**
 * Local HTTP servers that speak the documented shapes of the two provider
 * APIs the gateway calls, for tests that drive the real clients:
 *
 * - Anthropic Messages API: `POST /v1/messages`, authenticated by `x-api-key`
 *   with an `anthropic-version` header; the answer is a `message` whose
 *   `content` holds a `tool_use` block `{ type, id, name, input }`, with
 *   `stop_reason: "tool_use"` and `usage: { input_tokens, output_tokens }`.
 * - OpenAI chat completions: `POST /v1/chat/completions`, authenticated by
 *   `Authorization: Bearer`; the answer is a `chat.completion` whose
 *   `choices[0].message.content` is the JSON text, with
 *   `usage: { prompt_tokens, completion_tokens, total_tokens }`.
 *
 * Each server answers from a queue of scripted replies, one per request, and
 * records every request it receives.
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  // biome-ignore lint/suspicious/noExplicitAny: request bodies are inspected freely by the tests
  readonly body: any;
  /** `Date.now()` when the request arrived. */
  readonly at: number;
}

/** One scripted reply. */
export type Reply =
  /** A successful structured answer: the output object (tool input, or JSON content). */
  | { readonly kind: "output"; readonly output: unknown; readonly usage?: { input: number; output: number } }
  /** A successful answer whose text is given verbatim (for malformed JSON). */
  | { readonly kind: "text"; readonly text: string; readonly usage?: { input: number; output: number } }
  /** An HTTP error with the provider's error body. */
  | { readonly kind: "error"; readonly status: number; readonly headers?: Record<string, string> }
  /** Never answer (the client's timeout fires). */
  | { readonly kind: "hang" };

export interface FakeProvider {
  /** Base URL to give the client (`http://127.0.0.1:port` for Anthropic, `…/v1` for OpenAI). */
  readonly baseURL: string;
  readonly requests: RecordedRequest[];
  /** Queue replies for the next requests. */
  enqueue(...replies: Reply[]): void;
  close(): Promise<void>;
}

type Flavour = "anthropic" | "openai";

function anthropicBody(reply: Reply, body: { model?: string; tool_choice?: { name?: string } }): unknown {
  const usage = "usage" in reply && reply.usage ? reply.usage : { input: 1200, output: 800 };
  const content =
    reply.kind === "output"
      ? [{ type: "tool_use", id: "toolu_01A09q90qw90lq917835lq9", name: body.tool_choice?.name, input: reply.output }]
      : [{ type: "text", text: reply.kind === "text" ? reply.text : "" }];
  return {
    id: "msg_01XFDUDYJgAACzvnptvVoYEL",
    type: "message",
    role: "assistant",
    model: body.model,
    content,
    stop_reason: reply.kind === "output" ? "tool_use" : "end_turn",
    stop_sequence: null,
    usage: { input_tokens: usage.input, output_tokens: usage.output },
  };
}

function openaiBody(reply: Reply, body: { model?: string }): unknown {
  const usage = "usage" in reply && reply.usage ? reply.usage : { input: 1200, output: 800 };
  const content = reply.kind === "output" ? JSON.stringify(reply.output) : reply.kind === "text" ? reply.text : "";
  return {
    id: "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    object: "chat.completion",
    created: 1741569952,
    model: body.model,
    choices: [
      { index: 0, message: { role: "assistant", content, refusal: null }, logprobs: null, finish_reason: "stop" },
    ],
    usage: { prompt_tokens: usage.input, completion_tokens: usage.output, total_tokens: usage.input + usage.output },
  };
}

function errorBody(flavour: Flavour, status: number): unknown {
  if (flavour === "anthropic") {
    const type = status === 429 ? "rate_limit_error" : status === 529 ? "overloaded_error" : "api_error";
    return { type: "error", error: { type, message: `fake ${status}` } };
  }
  return { error: { message: `fake ${status}`, type: status === 429 ? "rate_limit_exceeded" : "server_error" } };
}

async function start(flavour: Flavour): Promise<FakeProvider> {
  const queue: Reply[] = [];
  const requests: RecordedRequest[] = [];
  const path = flavour === "anthropic" ? "/v1/messages" : "/v1/chat/completions";
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      let body: unknown = null;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      requests.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body, at: Date.now() });
      if (flavour === "anthropic" && req.headers["anthropic-version"] === undefined) {
        res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify(errorBody(flavour, 400)));
        return;
      }
      if (req.method !== "POST" || req.url !== path) {
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify(errorBody(flavour, 404)));
        return;
      }
      const reply = queue.shift();
      if (reply === undefined) {
        res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify(errorBody(flavour, 500)));
        return;
      }
      if (reply.kind === "hang") return;
      if (reply.kind === "error") {
        res
          .writeHead(reply.status, { "content-type": "application/json", ...reply.headers })
          .end(JSON.stringify(errorBody(flavour, reply.status)));
        return;
      }
      const payload = flavour === "anthropic" ? anthropicBody(reply, body as never) : openaiBody(reply, body as never);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(payload));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    baseURL: flavour === "anthropic" ? origin : `${origin}/v1`,
    requests,
    enqueue: (...replies) => queue.push(...replies),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const startFakeAnthropic = (): Promise<FakeProvider> => start("anthropic");
export const startFakeOpenAi = (): Promise<FakeProvider> => start("openai");
