/**
 * `outcome-runtime init` in a project folder: the commented outcome.yaml that
 * `validate` accepts, the MCP entries for Claude Code (`.mcp.json`) and
 * Cursor (`.cursor/mcp.json`), never clobbering what is there; the guides'
 * snippets are exactly what init writes; and the entries, read back and
 * expanded as each client expands them, start a working MCP server (the
 * SDK's own client over stdio, against a real API on a local port).
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the MCP config formats hold ${VAR} and ${env:VAR} literally
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { createTestApi, type TestApi } from "@outcome-runtime/api/test-app";
import { applyOutcome, transitionOutcome } from "@outcome-runtime/runtime";
import { exampleOutcome } from "@outcome-runtime/testing";
import { afterAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = join(root, "packages/cli/bin/outcome-runtime.mjs");
const run = promisify(execFile);
const base = mkdtempSync(join(tmpdir(), "ort-cli-init-mcp-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

let folders = 0;
/** A new empty project folder. */
function project(): string {
  const dir = join(base, `project-${++folders}`);
  mkdirSync(dir);
  return dir;
}

/** The installed CLI (its bin), run in a project folder as a user runs it there. */
async function cli(cwd: string, args: string[], env: Record<string, string> = {}) {
  const base: NodeJS.ProcessEnv = { ...process.env, ...env };
  // What init writes must not depend on the environment the tests run in.
  for (const name of ["OUTCOME_RUNTIME_URL", "OUTCOME_RUNTIME_API_KEY"]) if (!(name in env)) delete base[name];
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], { cwd, env: base });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function read(dir: string, file: string): string {
  return readFileSync(join(dir, file), "utf8");
}

function readJson(dir: string, file: string): { mcpServers: Record<string, Record<string, unknown>> } {
  return JSON.parse(read(dir, file));
}

const claudeStdio = {
  command: "npx",
  args: ["--no-install", "outcome-runtime", "mcp"],
  env: { OUTCOME_RUNTIME_URL: "http://localhost:8080", OUTCOME_RUNTIME_API_KEY: "${OUTCOME_RUNTIME_API_KEY}" },
};
const cursorStdio = {
  command: "npx",
  args: ["--no-install", "outcome-runtime", "mcp"],
  env: { OUTCOME_RUNTIME_URL: "http://localhost:8080", OUTCOME_RUNTIME_API_KEY: "${env:OUTCOME_RUNTIME_API_KEY}" },
};

describe("outcome-runtime init in an empty folder", () => {
  const dir = project();
  const files: Record<string, string> = {};

  it("writes a commented outcome.yaml that validate accepts, .mcp.json and .cursor/mcp.json", async () => {
    const result = await cli(dir, ["init"]);
    expect(result, result.stderr).toMatchObject({ code: 0 });
    expect(result.stdout).toContain("wrote outcome.yaml (a commented starter");
    expect(result.stdout).toContain("outcome.yaml: ok");
    expect(result.stdout).toContain("wrote .mcp.json (Claude Code, stdio)");
    expect(result.stdout).toContain("wrote .cursor/mcp.json (Cursor, stdio)");
    expect(result.stdout).toContain("outcome-runtime keys create --name claude-code --role agent");

    const yaml = read(dir, "outcome.yaml");
    expect(yaml.split("\n")[0]).toBe("# yaml-language-server: $schema=./schemas/outcome.schema.json");
    // Commented: most top-level fields say what they are for.
    expect(yaml.split("\n").filter((l) => /^\s*# /.test(l)).length).toBeGreaterThan(30);
    const validated = await cli(dir, ["validate", "outcome.yaml"]);
    expect(validated).toMatchObject({
      code: 0,
      stdout:
        "outcome.yaml: ok\n  signal: query reads one experiment at a time (:experiment); :experiments reads many at once\n",
    });

    expect(readJson(dir, ".mcp.json")).toEqual({ mcpServers: { "outcome-runtime": claudeStdio } });
    expect(readJson(dir, ".cursor/mcp.json")).toEqual({ mcpServers: { "outcome-runtime": cursorStdio } });
    for (const file of ["outcome.yaml", ".mcp.json", ".cursor/mcp.json"]) files[file] = read(dir, file);
  });

  it("refuses a second init without --force and changes nothing", async () => {
    const result = await cli(dir, ["init", "--mcp", "http"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error: outcome.yaml: already exists; pass --force to overwrite it");
    expect(result.stderr).toContain(".mcp.json: has another outcome-runtime entry; pass --force to replace it");
    expect(result.stderr).toContain("nothing was written");
    for (const [file, text] of Object.entries(files)) expect(read(dir, file), file).toBe(text);
  });

  it("leaves entries that are already there alone (--mcp-only keeps outcome.yaml)", async () => {
    const result = await cli(dir, ["--json", "init", "--mcp-only"]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      ok: true,
      file: null,
      mcp: [
        { client: "claude-code", file: ".mcp.json", transport: "stdio", action: "unchanged", otherServers: [] },
        { client: "cursor", file: ".cursor/mcp.json", transport: "stdio", action: "unchanged", otherServers: [] },
      ],
    });
    for (const [file, text] of Object.entries(files)) expect(read(dir, file), file).toBe(text);
  });

  it("with --force replaces its own entries and the outcome", async () => {
    writeFileSync(join(dir, "outcome.yaml"), "# mine\n");
    const result = await cli(dir, ["init", "--force", "--mcp", "http", "--url", "https://outcomes.acme.example/"]);
    expect(result, result.stderr).toMatchObject({ code: 0 });
    expect(read(dir, "outcome.yaml")).toBe(files["outcome.yaml"]);
    expect(readJson(dir, ".mcp.json").mcpServers["outcome-runtime"]).toEqual({
      type: "http",
      url: "https://outcomes.acme.example/mcp",
      headers: { Authorization: "Bearer ${OUTCOME_RUNTIME_API_KEY}" },
    });
    expect(readJson(dir, ".cursor/mcp.json").mcpServers["outcome-runtime"]).toEqual({
      url: "https://outcomes.acme.example/mcp",
      headers: { Authorization: "Bearer ${env:OUTCOME_RUNTIME_API_KEY}" },
    });
  });
});

describe("outcome-runtime init in a project with MCP servers of its own", () => {
  const github = { type: "http", url: "https://api.githubcopilot.com/mcp/" };
  const sentry = { command: "npx", args: ["-y", "@sentry/mcp-server"], env: { SENTRY_TOKEN: "${env:SENTRY_TOKEN}" } };

  it("adds outcome-runtime beside the other servers and keeps every other key", async () => {
    const dir = project();
    const claude = { $schema: "https://example.test/mcp.schema.json", mcpServers: { github } };
    writeFileSync(join(dir, ".mcp.json"), JSON.stringify(claude));
    mkdirSync(join(dir, ".cursor"));
    writeFileSync(join(dir, ".cursor/mcp.json"), JSON.stringify({ mcpServers: { sentry } }, null, 4));

    const result = await cli(dir, ["init", "--mcp-only"]);
    expect(result, result.stderr).toMatchObject({ code: 0 });
    expect(result.stdout).toContain("added outcome-runtime to .mcp.json (Claude Code, stdio; kept 1 other server)");
    expect(result.stdout).toContain("added outcome-runtime to .cursor/mcp.json (Cursor, stdio; kept 1 other server)");
    expect(existsSync(join(dir, "outcome.yaml"))).toBe(false);
    const written = readJson(dir, ".mcp.json");
    expect(written).toEqual({ ...claude, mcpServers: { github, "outcome-runtime": claudeStdio } });
    expect(Object.keys(written.mcpServers)).toEqual(["github", "outcome-runtime"]);
    expect(readJson(dir, ".cursor/mcp.json")).toEqual({ mcpServers: { sentry, "outcome-runtime": cursorStdio } });

    // --force replaces only its own entry.
    const forced = await cli(dir, ["init", "--mcp-only", "--mcp", "http", "--force"]);
    expect(forced.code).toBe(0);
    expect(readJson(dir, ".mcp.json").mcpServers.github).toEqual(github);
    expect(readJson(dir, ".cursor/mcp.json").mcpServers.sentry).toEqual(sentry);
    expect(readJson(dir, ".cursor/mcp.json").mcpServers["outcome-runtime"]).toMatchObject({
      url: "http://localhost:8080/mcp",
    });
  });

  it("refuses a config file that is not JSON, even with --force, and writes nothing", async () => {
    const dir = project();
    mkdirSync(join(dir, ".cursor"));
    writeFileSync(join(dir, ".cursor/mcp.json"), "{ // my servers\n}\n");
    const result = await cli(dir, ["init", "--force"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error: \.cursor\/mcp\.json: not valid JSON \(.+\); fix or remove it/m);
    expect(read(dir, ".cursor/mcp.json")).toBe("{ // my servers\n}\n");
    expect(existsSync(join(dir, "outcome.yaml"))).toBe(false);
    expect(existsSync(join(dir, ".mcp.json"))).toBe(false);
  });

  it("writes no MCP entry with --mcp none", async () => {
    const dir = project();
    const result = await cli(dir, ["init", "--mcp", "none"]);
    expect(result.code).toBe(0);
    expect(existsSync(join(dir, "outcome.yaml"))).toBe(true);
    expect(existsSync(join(dir, ".mcp.json"))).toBe(false);
    expect(existsSync(join(dir, ".cursor"))).toBe(false);
  });
});

/** The JSON between `<!-- snippet:NAME -->` and `<!-- /snippet -->` in a guide. */
function snippet(guide: string, name: string): unknown {
  const text = readFileSync(join(root, "docs/integrations", guide), "utf8");
  const match = new RegExp(`<!-- snippet:${name} -->\\s*\`\`\`json\\n([\\s\\S]*?)\`\`\`\\s*<!-- /snippet -->`).exec(
    text,
  );
  expect(match, `snippet ${name} in ${guide}`).not.toBeNull();
  return JSON.parse(match![1]!);
}

describe("the guides", () => {
  it("show exactly the files init writes, for stdio and for HTTP", async () => {
    for (const mode of ["stdio", "http"] as const) {
      const dir = project();
      expect((await cli(dir, ["init", "--mcp-only", "--mcp", mode])).code).toBe(0);
      expect(snippet("claude-code.md", `claude-code-${mode}`), `claude-code-${mode}`).toEqual(
        readJson(dir, ".mcp.json"),
      );
      expect(snippet("cursor.md", `cursor-${mode}`), `cursor-${mode}`).toEqual(readJson(dir, ".cursor/mcp.json"));
    }
  });
});

// ---------------------------------------------------------------------------
// The entries start a working server.

/** `${VAR}` and `${VAR:-default}`, as Claude Code expands them in .mcp.json. */
function expandClaudeCode(value: string, env: Record<string, string>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_, name: string, fallback?: string) => {
    const found = env[name] ?? fallback;
    if (found === undefined) throw new Error(`\${${name}} is not set`);
    return found;
  });
}

/** `${env:NAME}`, as Cursor expands it in .cursor/mcp.json. */
function expandCursor(value: string, env: Record<string, string>): string {
  return value.replace(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const found = env[name];
    if (found === undefined) throw new Error(`\${env:${name}} is not set`);
    return found;
  });
}

describe("the MCP entries init writes", () => {
  let api: TestApi | undefined;
  afterAll(async () => {
    await api?.close();
  });

  it("start a working server: the SDK client lists the tools and calls get_active_outcomes", async () => {
    api = await createTestApi();
    await api.app.listen({ port: 0, host: "127.0.0.1" });
    const url = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
    await applyOutcome({ db: api.t.db }, api.seed.admin, { source: exampleOutcome() });
    await transitionOutcome({ db: api.t.db }, api.seed.admin, "checkout-abandonment", "activate", null);
    const agentKey = (await api.seed.key("claude-code", "agent")).key;

    const dir = project();
    expect((await cli(dir, ["init", "--mcp-only"], { OUTCOME_RUNTIME_URL: url })).code).toBe(0);
    // The user's shell, as the agent's host sees it.
    const shell = { OUTCOME_RUNTIME_API_KEY: agentKey };

    for (const [file, expand] of [
      [".mcp.json", expandClaudeCode],
      [".cursor/mcp.json", expandCursor],
    ] as const) {
      const entry = readJson(dir, file).mcpServers["outcome-runtime"] as {
        command: string;
        args: string[];
        env: Record<string, string>;
      };
      expect(entry.env.OUTCOME_RUNTIME_URL).toBe(url);
      const transport = new StdioClientTransport({
        command: expand(entry.command, shell),
        args: entry.args.map((a) => expand(a, shell)),
        env: Object.fromEntries(Object.entries(entry.env).map(([k, v]) => [k, expand(v, shell)])),
        // `npx outcome-runtime` resolves to the CLI installed in the project; here, this repository's.
        cwd: root,
        stderr: "pipe",
      });
      let stderr = "";
      transport.stderr?.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const client = new Client({ name: "cli-init-mcp-test", version: "0.0.0" });
      try {
        await client.connect(transport);
        const { tools } = await client.listTools();
        expect(tools.map((t) => t.name)).toEqual(
          expect.arrayContaining([
            "get_active_outcomes",
            "get_experiment_brief",
            "claim_experiment",
            "report_experiment_built",
            "get_experiment_status",
            "query_learnings",
            "request_human_gate",
            "get_gate_status",
          ]),
        );
        const result = await client.callTool({ name: "get_active_outcomes", arguments: {} });
        expect(result.isError, JSON.stringify(result)).toBeFalsy();
        expect(JSON.stringify(result.structuredContent)).toContain("checkout-abandonment");
      } catch (error) {
        throw new Error(
          `${file}: ${error instanceof Error ? error.message : String(error)}\nserver stderr:\n${stderr}`,
        );
      } finally {
        await client.close();
      }
    }
  });

  it("with a key the API refuses, the server exits 1 with the reason on standard error and nothing on standard output", async () => {
    const url = `http://127.0.0.1:${(api!.app.server.address() as AddressInfo).port}`;
    const result = await cli(root, ["mcp"], {
      OUTCOME_RUNTIME_URL: url,
      OUTCOME_RUNTIME_API_KEY: "ork_not_a_real_key",
    });
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.stderr).toMatch(/^error: the API at http:\/\/127\.0\.0\.1:\d+ refused the API key \(401\)/);
  });
});
