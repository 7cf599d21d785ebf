// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the MCP config formats hold ${VAR} and ${env:VAR} literally
import { describe, expect, it } from "vitest";
import { MCP_SERVER_NAME, mcpEntry, planMcpFile } from "./mcp-entries";

describe("mcpEntry", () => {
  it("references the API key by each client's own variable syntax, never by value", () => {
    expect(mcpEntry("claude-code", "stdio", "http://localhost:8080")).toEqual({
      command: "npx",
      args: ["--no-install", "outcome-runtime", "mcp"],
      env: { OUTCOME_RUNTIME_URL: "http://localhost:8080", OUTCOME_RUNTIME_API_KEY: "${OUTCOME_RUNTIME_API_KEY}" },
    });
    expect(mcpEntry("cursor", "stdio", "http://localhost:8080").env).toEqual({
      OUTCOME_RUNTIME_URL: "http://localhost:8080",
      OUTCOME_RUNTIME_API_KEY: "${env:OUTCOME_RUNTIME_API_KEY}",
    });
  });

  it("points HTTP entries at /mcp; Claude Code's says type http, Cursor's has none", () => {
    expect(mcpEntry("claude-code", "http", "https://outcomes.acme.example//")).toEqual({
      type: "http",
      url: "https://outcomes.acme.example/mcp",
      headers: { Authorization: "Bearer ${OUTCOME_RUNTIME_API_KEY}" },
    });
    expect(mcpEntry("cursor", "http", "http://localhost:8080")).toEqual({
      url: "http://localhost:8080/mcp",
      headers: { Authorization: "Bearer ${env:OUTCOME_RUNTIME_API_KEY}" },
    });
  });
});

describe("planMcpFile", () => {
  const entry = mcpEntry("claude-code", "stdio", "http://localhost:8080");
  const other = { command: "other-server" };

  it("creates a file with only our server when there is none", () => {
    const plan = planMcpFile(null, entry, false);
    expect(plan).toMatchObject({ action: "create", others: [] });
    expect(JSON.parse((plan as { text: string }).text)).toEqual({ mcpServers: { [MCP_SERVER_NAME]: entry } });
    expect((plan as { text: string }).text.endsWith("}\n")).toBe(true);
  });

  it("adds our server after the others, keeping every other key", () => {
    const existing = JSON.stringify({ inputs: [1], mcpServers: { other } });
    const plan = planMcpFile(existing, entry, false);
    expect(plan).toMatchObject({ action: "add", others: ["other"] });
    const doc = JSON.parse((plan as { text: string }).text);
    expect(doc).toEqual({ inputs: [1], mcpServers: { other, [MCP_SERVER_NAME]: entry } });
    expect(Object.keys(doc.mcpServers)).toEqual(["other", MCP_SERVER_NAME]);
  });

  it("treats an empty file or one without mcpServers as a place to add", () => {
    expect(planMcpFile("", entry, false).action).toBe("add");
    expect(planMcpFile("{}", entry, false).action).toBe("add");
  });

  it("leaves an identical entry alone, and a different one unless forced", () => {
    const same = JSON.stringify({ mcpServers: { other, [MCP_SERVER_NAME]: entry } });
    expect(planMcpFile(same, entry, true)).toEqual({ action: "unchanged", others: ["other"] });
    const differs = JSON.stringify({ mcpServers: { [MCP_SERVER_NAME]: { url: "x" }, other } });
    expect(planMcpFile(differs, entry, false)).toEqual({ action: "conflict", others: ["other"] });
    const forced = planMcpFile(differs, entry, true);
    expect(forced.action).toBe("replace");
    const doc = JSON.parse((forced as { text: string }).text);
    // Replaced in place: the order of the servers is kept.
    expect(Object.keys(doc.mcpServers)).toEqual([MCP_SERVER_NAME, "other"]);
    expect(doc.mcpServers.other).toEqual(other);
  });

  it("refuses what is not a JSON object with an mcpServers object", () => {
    expect(planMcpFile("{ // comment\n}", entry, true)).toMatchObject({ action: "invalid" });
    expect(planMcpFile("[]", entry, true)).toEqual({ action: "invalid", reason: "not a JSON object" });
    expect(planMcpFile('{"mcpServers": []}', entry, true)).toEqual({
      action: "invalid",
      reason: '"mcpServers" is not an object',
    });
  });
});
