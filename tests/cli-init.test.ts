/**
 * `outcome-runtime init --from`: a real CLI process drafting offline with the
 * rules engine, and the file it writes checked by `validate`.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "outcome-runtime-init-"));
const SENTENCE = "Cut checkout abandonment from 68% to 60% in 6 weeks";

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function cli(args: string[]) {
  try {
    // In the temporary folder: init writes the MCP entries (.mcp.json, .cursor/mcp.json) where it runs.
    const { stdout, stderr } = await run(process.execPath, [`${root}packages/cli/bin/outcome-runtime.mjs`, ...args], {
      cwd: dir,
      // No API listens on port 9: --offline must not need one.
      env: { ...process.env, OUTCOME_RUNTIME_URL: "http://127.0.0.1:9" },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A stack trace line as Node prints them. */
const STACK = /^\s+at .+[(:]\d+:\d+\)?$/m;

describe("outcome-runtime init --from", () => {
  const file = join(dir, "outcome.yaml");

  it("writes an outcome that validate accepts, with the todos as comments, and says what to fill in", async () => {
    const result = await cli(["init", "--from", SENTENCE, "--offline", "--out", file]);
    expect(result).toMatchObject({ code: 0 });
    expect(result.stdout).toContain(`${file}: ok`);
    expect(result.stdout).toContain("signal.connector.query");
    expect(result.stdout).toContain(`outcome-runtime apply ${file}`);

    const text = readFileSync(file, "utf8");
    expect(text.split("\n")[0]).toBe("# yaml-language-server: $schema=./schemas/outcome.schema.json");
    expect(text).toMatch(/# TODO: replace owner@example\.com .*\nowner: owner@example\.com/);
    expect(text).toMatch(/# TODO: write the SQL .*\n\s+query: \|/);

    const validated = await cli(["validate", file]);
    expect(validated).toMatchObject({ code: 0 });
    expect(validated.stdout.trim().split("\n")).toEqual([
      `${file}: ok`,
      "  signal: query reads one experiment at a time (:experiment); :experiments reads many at once",
    ]);
  });

  it("refuses to overwrite the file without --force, and overwrites it with --force", async () => {
    const before = readFileSync(file, "utf8");
    const refused = await cli([
      "init",
      "--from",
      "Increase trial-to-paid conversion by 10%",
      "--offline",
      "--out",
      file,
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("already exists; pass --force");
    expect(readFileSync(file, "utf8")).toBe(before);

    const forced = await cli([
      "init",
      "--from",
      "Increase trial-to-paid conversion by 10%",
      "--offline",
      "--force",
      "--out",
      file,
    ]);
    expect(forced.code).toBe(0);
    expect(readFileSync(file, "utf8")).toContain("trial_to_paid_conversion_rate");
  });

  it("exits 1 with a clear message and no stack for a sentence it cannot read", async () => {
    const bad = join(dir, "bad.yaml");
    const result = await cli(["init", "--from", "make the product better somehow", "--offline", "--out", bad]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error: could not draft an outcome from "make the product better somehow"/);
    expect(result.stderr).toContain(SENTENCE);
    expect(result.stderr).not.toMatch(STACK);
    expect(() => readFileSync(bad)).toThrow();
  });

  it("drafts offline, saying so, when the API cannot be reached", async () => {
    const result = await cli(["init", "--from", SENTENCE, "--out", join(dir, "fallback.yaml")]);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain("cannot reach the API");
    expect(result.stderr).toContain("drafting offline with the rules engine");
  });
});
