import { describe, expect, it } from "vitest";
import { mcpEndpoint, StdioServerError } from "./stdio";

describe("mcpEndpoint", () => {
  it("appends /mcp to an API base URL and keeps an /mcp URL", () => {
    expect(mcpEndpoint("http://127.0.0.1:8080").href).toBe("http://127.0.0.1:8080/mcp");
    expect(mcpEndpoint("http://127.0.0.1:8080/").href).toBe("http://127.0.0.1:8080/mcp");
    expect(mcpEndpoint("https://acme.example/outcomes/").href).toBe("https://acme.example/outcomes/mcp");
    expect(mcpEndpoint("https://acme.example/mcp").href).toBe("https://acme.example/mcp");
  });

  it("refuses what is not a URL, saying what to pass", () => {
    expect(() => mcpEndpoint("localhost:8080")).toThrow(StdioServerError);
    expect(() => mcpEndpoint("nope")).toThrow(/base URL, e.g. http:\/\/127.0.0.1:8080/);
  });
});
