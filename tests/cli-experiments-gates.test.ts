/**
 * `outcome-runtime experiments …` and `gates …` as people run them: real CLI
 * processes against a real API on a local port (real Postgres and Redis).
 * One outcome goes from its portfolio review through a launch that is sent
 * back, a launch that is approved, an analysis read from a CSV signal, to a
 * shipped decision; the refusals on the way print `error[code]: detail` and
 * exit 1. Every output is checked for ANSI escapes: stdout is not a TTY here.
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createTestApi, type TestApi } from "@outcome-runtime/api/test-app";
import { analyseExperiment, connectorProvider, pollExperiment, sourceAccessFromEnv } from "@outcome-runtime/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "ort-cli-work-"));
const MAYA = "maya.pm@acme.example";
const SLUG = "cli-work";
const signalFile = join(dir, "signal.csv");

let api: TestApi;
let url: string;
const keys = { admin: "", maya: "", outsider: "", agent: "" };

/** An outcome whose signal is a CSV file of cumulative aggregates (written once the experiment runs). */
const outcomeYaml = `version: 1
id: ${SLUG}
name: CLI work
owner: ${MAYA}
signal:
  metric: checkout_conversion_rate
  kind: proportion
  unit: session
  baseline: 0.32
  connector:
    type: csv
    path: signal.csv
target:
  direction: increase
  value: 5%
  relative: true
horizon: 60d
constraints:
  scope:
    allowed_paths: ["src/checkout/**"]
    forbidden_paths: ["src/payments/**"]
gates:
  portfolio_review:
    assignees: [${MAYA}]
  launch_approval:
    assignees: [${MAYA}]
  analysis_review:
    assignees: [${MAYA}]
experiment_defaults:
  min_sample_per_arm: 1000
  min_duration: 1s
  expected_effect: 10%
  arms:
    - name: control
      weight: 50%
    - name: treatment
      weight: 50%
`;

beforeAll(async () => {
  api = await createTestApi();
  await api.app.listen({ port: 0, host: "127.0.0.1" });
  url = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
  keys.admin = api.seed.adminKey;
  keys.maya = (await api.seed.key(MAYA, "approver")).key;
  keys.outsider = (await api.seed.key("sam@acme.example", "approver")).key;
  keys.agent = (await api.seed.key("claude-code", "agent")).key;
  writeFileSync(join(dir, "outcome.yaml"), outcomeYaml);
});
afterAll(async () => {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

const ESC = "\u001b";

/** The CLI as a process, with stdout and stderr piped (not a TTY), as `as` with one of the keys. */
async function cli(as: keyof typeof keys, args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, OUTCOME_RUNTIME_URL: url, OUTCOME_RUNTIME_API_KEY: keys[as] };
  delete env.FORCE_COLOR;
  delete env.NO_COLOR;
  let result: { code: number; stdout: string; stderr: string };
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "packages/cli/src/main.ts", ...args], {
      cwd: root,
      env,
      maxBuffer: 20 * 1024 * 1024,
    });
    result = { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    result = { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
  // Colours are off when the output is not a terminal.
  expect(result.stdout.includes(ESC), `ANSI escape in stdout of ${args.join(" ")}`).toBe(false);
  expect(result.stderr.includes(ESC), `ANSI escape in stderr of ${args.join(" ")}`).toBe(false);
  return result;
}

async function json<T>(as: keyof typeof keys, args: string[]): Promise<T> {
  const result = await cli(as, ["--json", ...args]);
  expect(result, result.stderr).toMatchObject({ code: 0 });
  return JSON.parse(result.stdout) as T;
}

/** A request to the API as an agent would send it (the MCP tools make the same calls). */
async function asAgent(
  path: string,
  body: unknown,
): Promise<{ experiment: { state: string }; openedGates: { id: string; kind: string }[] }> {
  const response = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${keys.agent}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as never;
}

interface Experiment {
  id: string;
  key: string;
  state: string;
}
interface Gate {
  id: string;
  kind: string;
  status: string;
}

let experimentKeys: string[] = [];
let portfolioGate = "";
let launched: Experiment;

describe("experiments list, show and brief", () => {
  it("lists the proposed hypotheses of an activated outcome, as text and as JSON, and filters them", async () => {
    expect((await cli("admin", ["apply", join(dir, "outcome.yaml")])).code).toBe(0);
    expect((await cli("admin", ["activate", SLUG])).code).toBe(0);

    const text = await cli("admin", ["experiments", "list"]);
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(SLUG);
    expect(lines.slice(1)).toHaveLength(3);
    for (const line of lines.slice(1)) expect(line).toMatch(/^ {2}\S+\s+\[proposed\]\s+\S/);

    const { items } = await json<{ items: Experiment[] }>("admin", ["experiments", "list", "--outcome", SLUG]);
    expect(items.map((e) => e.state)).toEqual(["proposed", "proposed", "proposed"]);
    experimentKeys = items.map((e) => e.key);
    for (const key of experimentKeys) expect(text.stdout).toContain(key);

    const none = await cli("admin", ["experiments", "list", "--state", "running"]);
    expect(none).toMatchObject({ code: 0, stdout: "No experiments in state running.\n" });
  });

  it("refuses an unknown experiment or outcome with error[not_found] and exit 1", async () => {
    for (const args of [
      ["experiments", "show", "no-such-experiment"],
      ["experiments", "brief", "no-such-experiment"],
      ["experiments", "list", "--outcome", "no-such-outcome"],
    ]) {
      const result = await cli("admin", args);
      expect(result.code, args.join(" ")).toBe(1);
      expect(result.stderr).toMatch(/^error\[not_found\]: /);
      expect(result.stdout).toBe("");
    }
    const asJson = await cli("admin", ["--json", "experiments", "show", "no-such-experiment"]);
    expect(asJson.code).toBe(1);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ ok: false, problem: { code: "not_found", status: 404 } });
  });
});

describe("gates: the inbox, a gate, and the refusals", () => {
  it("shows the portfolio review in the assignee's inbox, not in someone else's; --all shows every gate", async () => {
    const inbox = await json<{ items: Gate[]; nextCursor: null }>("maya", ["gates", "list"]);
    expect(inbox.items.map((g) => [g.kind, g.status])).toEqual([["portfolio_review", "pending"]]);
    portfolioGate = inbox.items[0]!.id;

    const text = await cli("maya", ["gates", "list"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^${portfolioGate}  portfolio_review  \\[pending\\]  due .+${MAYA}`, "m"));

    expect((await cli("outsider", ["gates", "list"])).stdout).toBe(
      "Your inbox is empty: no pending gate waits for you.\n",
    );
    const all = await json<{ items: Gate[] }>("outsider", ["gates", "list", "--all"]);
    expect(all.items.map((g) => g.id)).toContain(portfolioGate);
    const launches = await json<{ items: Gate[] }>("maya", ["gates", "list", "--kind", "launch_approval"]);
    expect(launches.items).toEqual([]);
  });

  it("shows a gate with its hypotheses and the commands that decide it", async () => {
    const text = await cli("maya", ["gates", "show", portfolioGate]);
    expect(text.code).toBe(0);
    expect(text.stdout.split("\n")[0]).toBe(`portfolio_review [pending]  ${portfolioGate}`);
    expect(text.stdout).toContain(`assignees: ${MAYA}`);
    expect(text.stdout).toContain(`outcome: ${SLUG}`);
    for (const key of experimentKeys) expect(text.stdout).toMatch(new RegExp(`^ {4}- ${key} \\[proposed\\] `, "m"));
    expect(text.stdout).toContain(`Decide with:\n  outcome-runtime gates approve ${portfolioGate}`);
    expect(text.stdout).toContain(`outcome-runtime gates reject ${portfolioGate}`);

    const detail = await json<{ gate: Gate; options: { decision: string }[]; contextPackage: { kind: string } }>(
      "maya",
      ["gates", "show", portfolioGate],
    );
    expect(detail.gate.status).toBe("pending");
    expect(detail.contextPackage.kind).toBe("portfolio_review");
    expect(detail.options.map((o) => o.decision)).toEqual(["approve", "reject"]);
  });

  it("refuses an agent's decision, a non-assignee's decision and an unknown gate, and exits 1", async () => {
    const agent = await cli("agent", ["gates", "approve", portfolioGate]);
    expect(agent.code).toBe(1);
    expect(agent.stderr).toMatch(/^error\[agents_cannot_decide\]: agents cannot decide gates/);

    const outsider = await cli("outsider", ["gates", "reject", portfolioGate, "--reason", "not mine"]);
    expect(outsider.code).toBe(1);
    expect(outsider.stderr).toMatch(/^error\[gate_not_assignee\]: sam@acme\.example is not an assignee/);

    for (const args of [
      ["gates", "show", randomUUID()],
      ["gates", "approve", randomUUID()],
    ]) {
      const unknown = await cli("maya", args);
      expect(unknown.code, args.join(" ")).toBe(1);
      expect(unknown.stderr).toMatch(/^error\[not_found\]: /);
    }
    // Nothing was decided on the way.
    expect((await json<{ gate: Gate }>("maya", ["gates", "show", portfolioGate])).gate.status).toBe("pending");
  });

  it("approves the portfolio once; a second decision names the first", async () => {
    const approved = await cli("maya", ["gates", "approve", portfolioGate, "--reason", "worth a try"]);
    expect(approved.code).toBe(0);
    expect(approved.stdout.split("\n")[0]).toBe(`portfolio_review ${portfolioGate}: [approved] (approve by ${MAYA})`);
    for (const key of experimentKeys) expect(approved.stdout).toMatch(new RegExp(`^ {2}${key}: \\[approved\\] `, "m"));

    const again = await cli("maya", ["gates", "reject", portfolioGate]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(
      new RegExp(
        `^error\\[gate_already_decided\\]: gate ${portfolioGate} was already decided: approve by ${MAYA} via api`,
      ),
    );
    const againJson = await cli("maya", ["--json", "gates", "approve", portfolioGate]);
    expect(againJson.code).toBe(1);
    expect(JSON.parse(againJson.stdout)).toMatchObject({
      ok: false,
      problem: { code: "gate_already_decided", details: { decision: { decision: "approve", decidedBy: MAYA } } },
    });
    const decided = await cli("maya", ["gates", "show", portfolioGate]);
    expect(decided.stdout).toContain(`decided: approve by ${MAYA} via api`);
    expect(decided.stdout).toContain('("worth a try")');
    expect(decided.stdout).not.toContain("Decide with:");
  });
});

describe("from brief to launch", () => {
  it("prints the brief as Markdown, and as the structured brief with --json", async () => {
    const key = experimentKeys[0]!;
    const markdown = await cli("agent", ["experiments", "brief", key]);
    expect(markdown.code).toBe(0);
    expect(markdown.stdout).toMatch(/^# \S/);
    expect(markdown.stdout).toContain(`Experiment \`${key}\` (approved)`);
    expect(markdown.stdout).toContain("## Assignment and exposure");
    expect(markdown.stdout).toContain("`src/payments/**`");

    const brief = await json<{ experiment: { key: string }; forbiddenPaths: string[]; next: string }>("agent", [
      "experiments",
      "brief",
      key,
    ]);
    expect(brief.experiment.key).toBe(key);
    expect(brief.forbiddenPaths).toEqual(["src/payments/**"]);
    expect(brief.next).toMatch(/claim_experiment/);
  });

  it("sends a launch back to its builder, then launches the rebuilt experiment", async () => {
    const key = experimentKeys[0]!;
    const id = (await json<{ experiment: Experiment }>("admin", ["experiments", "show", key])).experiment.id;
    await asAgent(`/v1/experiments/${id}/transitions`, { action: "claim", claimedBy: "claude-code" });
    const build = {
      summary: "One-page checkout behind the flag one-page-checkout",
      pullRequestUrl: "https://git.example/acme/shop/pull/42",
      flagKey: "one-page-checkout",
    };
    const built = await asAgent(`/v1/experiments/${id}/transitions`, {
      action: "report_built",
      changedPaths: ["src/checkout/page.tsx"],
      build,
    });
    const launchGate = built.openedGates[0]!;
    expect(launchGate.kind).toBe("launch_approval");

    const inbox = await json<{ items: Gate[] }>("maya", ["gates", "list", "--kind", "launch_approval"]);
    expect(inbox.items.map((g) => g.id)).toEqual([launchGate.id]);
    const shown = await cli("maya", ["gates", "show", launchGate.id]);
    expect(shown.stdout).toContain(`build: ${build.summary}`);
    expect(shown.stdout).toContain(`pull request: ${build.pullRequestUrl}`);
    expect(shown.stdout).toContain("changed: src/checkout/page.tsx");

    const sentBack = await cli("maya", ["gates", "reject", launchGate.id, "--reason", "add the exposure log"]);
    expect(sentBack.code).toBe(0);
    expect(sentBack.stdout).toContain(`${key}: [building]`);

    const rebuilt = await asAgent(`/v1/experiments/${id}/transitions`, {
      action: "report_built",
      changedPaths: ["src/checkout/page.tsx", "src/checkout/exposure.ts"],
      build: { ...build, summary: `${build.summary}, with the exposure log` },
    });
    const launch = await json<{ gate: Gate; experiments: Experiment[] }>("maya", [
      "gates",
      "approve",
      rebuilt.openedGates[0]!.id,
    ]);
    expect(launch.gate.status).toBe("approved");
    expect(launch.experiments.map((e) => e.state)).toEqual(["running"]);
    launched = launch.experiments[0]!;
  });
});

describe("an analysis, and the decision on it", () => {
  let review = "";

  it("shows the latest analysis of a running experiment: effect, always-valid interval and p-value, and its gates", async () => {
    // Cumulative aggregates over two days: control converts 32 %, the treatment 40 %.
    const now = Date.now();
    const rows = ["experiment,ts,arm,units,sum,sum_sq"];
    [48, 24, 0.1].forEach((hours, i) => {
      const ts = new Date(now - hours * 3600_000).toISOString();
      const units = 5000 * (i + 1);
      rows.push(`${launched.key},${ts},control,${units},${units * 0.32},${units * 0.32}`);
      rows.push(`${launched.key},${ts},treatment,${units},${units * 0.4},${units * 0.4}`);
    });
    writeFileSync(signalFile, `${rows.join("\n")}\n`);
    const connectors = connectorProvider({ db: api.t.db, access: sourceAccessFromEnv({ SOURCE_CSV_DIR: dir }) });
    await pollExperiment({ db: api.t.db, connectors }, launched.id);
    const analysed = await analyseExperiment({ db: api.t.db }, launched.id);
    await connectors.close();
    expect(analysed.decision).toMatchObject({ action: "analyse", reason: "win" });

    const detail = await json<{
      experiment: Experiment;
      latestAnalysis: { effect: number; ci: [number, number]; pValue: number };
      gates: Gate[];
    }>("maya", ["experiments", "show", launched.key]);
    expect(detail.experiment.state).toBe("analysing");
    expect(detail.latestAnalysis.effect).toBeCloseTo(0.08, 10);
    expect(detail.latestAnalysis.pValue).toBeLessThan(0.05);
    review = detail.gates.find((g) => g.kind === "analysis_review")!.id;

    const text = await cli("maya", ["experiments", "show", launched.key]);
    expect(text.code).toBe(0);
    const [low, high] = detail.latestAnalysis.ci.map((x) => String(Number(x.toPrecision(4))));
    expect(text.stdout.split("\n")[0]).toMatch(new RegExp(`^${launched.key}  \\[analysing\\]  `));
    expect(text.stdout).toContain("arms: control 50%, treatment 50%");
    expect(text.stdout).toContain("pull request: https://git.example/acme/shop/pull/42");
    expect(text.stdout).toContain("latest analysis (data up to ");
    expect(text.stdout).toMatch(/^ {4}effect: 0\.08 \(\+25% relative to control\)$/m);
    expect(text.stdout).toContain(`    95% always-valid interval: [${low}, ${high}]`);
    expect(text.stdout).toMatch(/^ {4}always-valid p-value: (< 0\.0001|0\.0\d+)$/m);
    expect(text.stdout).toMatch(/^ {4}decision: analyse \(win\)/m);
    expect(text.stdout).toMatch(new RegExp(`^ {4}- launch_approval \\[rejected\\] reject by ${MAYA}`, "m"));
    expect(text.stdout).toMatch(new RegExp(`^ {4}- launch_approval \\[approved\\] approve by ${MAYA}`, "m"));
    expect(text.stdout).toMatch(new RegExp(`^ {4}- analysis_review \\[pending\\] due .+  ${review}$`, "m"));
  });

  it("shows the analysis review with its trigger and the decisions it takes", async () => {
    const text = await cli("maya", ["gates", "show", review]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("trigger: analyse (win)");
    expect(text.stdout).toMatch(/^ {4}95% always-valid interval: \[/m);
    for (const decision of ["ship", "iterate", "extend", "roll_back"]) {
      expect(text.stdout).toContain(`outcome-runtime gates decide ${review} ${decision}`);
    }
    expect(text.stdout).not.toContain(`gates decide ${review} resume`);
    expect((await json<{ items: Gate[] }>("maya", ["gates", "list", "--kind", "analysis_review"])).items).toHaveLength(
      1,
    );
  });

  it("refuses a decision the review does not take now, then ships once", async () => {
    const resume = await cli("maya", ["gates", "decide", review, "resume"]);
    expect(resume.code).toBe(1);
    expect(resume.stderr).toMatch(/^error\[invalid_decision\]: /);
    const approve = await cli("maya", ["gates", "approve", review]);
    expect(approve.code).toBe(1);
    expect(approve.stderr).toMatch(/^error\[invalid_decision\]: /);
    const agent = await cli("agent", ["gates", "decide", review, "ship"]);
    expect(agent.stderr).toMatch(/^error\[agents_cannot_decide\]: /);

    const shipped = await cli("maya", ["gates", "decide", review, "ship", "--reason", "a clear win; guardrails fine"]);
    expect(shipped.code).toBe(0);
    expect(shipped.stdout.split("\n")[0]).toBe(`analysis_review ${review}: [approved] (ship by ${MAYA})`);
    expect(shipped.stdout).toContain(`${launched.key}: [shipped]`);
    expect(shipped.stdout).toMatch(/^ {2}learning written: [0-9a-f-]{36}$/m);

    const twice = await cli("maya", ["gates", "decide", review, "roll_back"]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(new RegExp(`^error\\[gate_already_decided\\]: .*ship by ${MAYA}`));
    expect((await cli("maya", ["gates", "list"])).stdout).toBe("Your inbox is empty: no pending gate waits for you.\n");
    expect((await json<{ items: Experiment[] }>("admin", ["experiments", "list", "--state", "shipped"])).items).toEqual(
      [expect.objectContaining({ key: launched.key, state: "shipped" })],
    );
  });
});
