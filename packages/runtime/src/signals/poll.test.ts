import { ConnectorError } from "@outcome-runtime/connectors";
import { DomainError } from "@outcome-runtime/core";
import { describe, expect, it } from "vitest";
import { describePollError } from "./poll";

function pgError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code, severity: "FATAL" });
}

describe("describePollError", () => {
  it("keeps a connector's code and retryability", () => {
    expect(describePollError(new ConnectorError("invalid_config", "no table", { retryable: false }))).toEqual({
      code: "invalid_config",
      message: "no table",
      retryable: false,
    });
  });

  it("reports the runtime's own database as REST and MCP do: a lost connection or a conflict, retryable", () => {
    expect(describePollError(pgError("terminating connection due to administrator command", "57P01"))).toEqual({
      code: "service_unavailable",
      message: "the database is unavailable or too slow right now; retry shortly",
      retryable: true,
    });
    expect(describePollError(pgError("could not serialize access", "40001"))).toEqual({
      code: "conflict",
      message: "the request collided with a concurrent change; retry it",
      retryable: true,
    });
  });

  it("does not retry a domain refusal; anything else is poll_failed and retried", () => {
    expect(describePollError(new DomainError("not_found", "no experiment x")).retryable).toBe(false);
    expect(describePollError(new Error("boom"))).toEqual({ code: "poll_failed", message: "boom", retryable: true });
  });
});
