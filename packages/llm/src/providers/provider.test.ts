import { describe, expect, it } from "vitest";
import { kindOfStatus, parseJsonText, retryAfterMs } from "./provider";

const headers = (h: Record<string, string>) => new Headers(h);

describe("retryAfterMs", () => {
  const now = Date.parse("2026-12-15T12:00:00Z");
  it("reads delay-seconds", () => {
    expect(retryAfterMs(headers({ "retry-after": "3" }), now)).toBe(3000);
    expect(retryAfterMs(headers({ "retry-after": "0.5" }), now)).toBe(500);
  });
  it("reads an HTTP date relative to now, never negative", () => {
    expect(retryAfterMs(headers({ "retry-after": "Tue, 15 Dec 2026 12:00:07 GMT" }), now)).toBe(7000);
    expect(retryAfterMs(headers({ "retry-after": "Tue, 15 Dec 2026 11:00:00 GMT" }), now)).toBe(0);
  });
  it("prefers retry-after-ms, ignores garbage", () => {
    expect(retryAfterMs(headers({ "retry-after-ms": "250", "retry-after": "9" }), now)).toBe(250);
    expect(retryAfterMs(headers({ "retry-after": "soon" }), now)).toBeNull();
    expect(retryAfterMs(headers({}), now)).toBeNull();
    expect(retryAfterMs(undefined, now)).toBeNull();
  });
});

describe("kindOfStatus", () => {
  it("retries 429, 408 and 5xx only", () => {
    expect([429, 408, 500, 503, 529, 400, 401, 404].map(kindOfStatus)).toEqual([
      "rate_limited",
      "timeout",
      "server_error",
      "server_error",
      "server_error",
      "client_error",
      "client_error",
      "client_error",
    ]);
  });
});

describe("parseJsonText", () => {
  it("parses JSON, fenced or not", () => {
    expect(parseJsonText('{"a":1}')).toEqual({ output: { a: 1 }, malformed: null });
    expect(parseJsonText('```json\n{"a":1}\n```')).toEqual({ output: { a: 1 }, malformed: null });
  });
  it("reports malformed and empty text", () => {
    expect(parseJsonText('{"a":').malformed).toMatch(/^malformed JSON/);
    expect(parseJsonText("  ").malformed).toBe("empty response");
  });
});
