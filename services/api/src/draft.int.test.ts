import { parseOutcome } from "@outcome-runtime/spec";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, type TestApi } from "./test-app";

const SENTENCE = "Cut checkout abandonment from 68% to 60% in 6 weeks";

let api: TestApi;

beforeAll(async () => {
  api = await createTestApi();
});
afterAll(async () => {
  await api.close();
});

function draft(body: unknown) {
  return api.app.inject({ method: "POST", url: "/v1/outcomes/draft", headers: api.auth, payload: body as object });
}

describe("POST /v1/outcomes/draft", () => {
  it("drafts a valid outcome.yaml with the rules engine when no LLM is configured, and audits the call", async () => {
    const res = await draft({ sentence: SENTENCE });
    expect(res.statusCode).toBe(200);
    const body = res.json() as {
      yaml: string;
      todos: { path: string; note: string }[];
      source: string;
      fallbackReason: string | null;
    };
    expect(body).toMatchObject({ source: "rules", fallbackReason: null });
    const parsed = parseOutcome(body.yaml);
    expect(parsed.ok).toBe(true);
    if (parsed.ok) {
      expect(parsed.spec.target).toMatchObject({ direction: "decrease", value: 0.6 });
      expect(parsed.spec.signal.metric).toBe("checkout_abandonment_rate");
    }
    expect(body.yaml.split("\n")[0]).toBe("# yaml-language-server: $schema=./schemas/outcome.schema.json");
    expect(body.todos.map((t) => t.path)).toEqual(expect.arrayContaining(["owner", "signal.connector.query", "gates"]));
    for (const todo of body.todos) expect(body.yaml).toContain(`# TODO: ${todo.note}`);

    const audit = await api.app.inject({
      method: "GET",
      url: `/v1/audit?action=llm.call&subjectType=workspace&subjectId=${api.seed.workspaceId}`,
      headers: api.auth,
    });
    expect(audit.statusCode).toBe(200);
    const events = (audit.json() as { items: { action: string; after: Record<string, unknown> }[] }).items;
    expect(events.some((e) => e.after.operation === "draft_outcome" && e.after.source === "rules")).toBe(true);
  });

  it("refuses an empty sentence with validation_failed on sentence", async () => {
    const res = await draft({ sentence: "" });
    expect(res.statusCode).toBe(400);
    expect(res.headers["content-type"]).toContain("application/problem+json");
    expect(res.json()).toMatchObject({ code: "validation_failed", errors: [{ field: "body.sentence" }] });
  });

  it("refuses a sentence it cannot read, saying what was missing and giving an example", async () => {
    const res = await draft({ sentence: "make the product better somehow" });
    expect(res.statusCode).toBe(400);
    const problem = res.json() as { code: string; detail: string; errors: { field: string }[] };
    expect(problem).toMatchObject({ code: "validation_failed", errors: [{ field: "sentence" }] });
    expect(problem.detail).toContain("change verb");
    expect(problem.detail).toContain(SENTENCE);
  });

  it("refuses a missing sentence and unknown fields", async () => {
    expect((await draft({})).json()).toMatchObject({ code: "validation_failed" });
    expect((await draft({ sentence: SENTENCE, model: "x" })).statusCode).toBe(400);
  });
});
