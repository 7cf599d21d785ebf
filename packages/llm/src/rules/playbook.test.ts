import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AREAS, defaultPlaybooks, loadPlaybooks } from "./playbook";
import { fill, placeholderValues } from "./render";
import { RulesError } from "./rules-error";

describe("the playbook library", () => {
  const templates = defaultPlaybooks();

  it("holds at least 24 templates across every area", () => {
    expect(templates.length).toBeGreaterThanOrEqual(24);
    for (const area of AREAS) {
      expect(templates.filter((t) => t.area === area).length, area).toBeGreaterThanOrEqual(4);
    }
  });

  it("offers at least three distinct mechanisms per area and metric kind", () => {
    for (const area of AREAS) {
      for (const kind of ["proportion", "mean"] as const) {
        const keys = new Set(
          templates
            .filter((t) => (t.area === area || t.also_areas.includes(area)) && t.kinds.includes(kind))
            .map((t) => t.mechanism_key),
        );
        expect(keys.size, `${area}/${kind}`).toBeGreaterThanOrEqual(3);
      }
    }
  });

  it("renders every template with no placeholder left", () => {
    const outcome = {
      id: "x",
      name: "X",
      signal: { metric: "m", kind: "proportion" as const, unit: "user" },
      target: { direction: "increase" as const, value: 0.1, relative: true },
    };
    for (const t of templates) {
      const values = placeholderValues(outcome, t);
      for (const text of [t.title, t.statement, t.mechanism, t.measurement_plan, t.rollout_plan]) {
        expect(fill(text, values)).not.toMatch(/\{\{|\}\}/);
      }
    }
  });

  it("rejects a playbook with an unknown placeholder, naming the file and template", () => {
    const dir = mkdtempSync(join(tmpdir(), "playbooks-"));
    const text = "x".repeat(12);
    writeFileSync(
      join(dir, "bad.yaml"),
      [
        "area: checkout",
        "templates:",
        "  - id: checkout-bad",
        "    title: A bad template",
        "    mechanism_key: trust",
        "    kinds: [proportion]",
        "    statement: If we do {{metrik}} then things happen",
        `    mechanism: ${text}`,
        "    expected_effect: 0.02",
        "    confidence: 0.5",
        "    effort: S",
        "    risk: low",
        "    touched_paths: [checkout/**]",
        `    measurement_plan: ${text}`,
        `    rollout_plan: ${text}`,
      ].join("\n"),
    );
    expect(() => loadPlaybooks(dir)).toThrow(RulesError);
    expect(() => loadPlaybooks(dir)).toThrow(/bad\.yaml: template checkout-bad: unknown placeholder \{\{metrik\}\}/);
  });

  it("rejects a playbook that breaks the format", () => {
    const dir = mkdtempSync(join(tmpdir(), "playbooks-"));
    writeFileSync(join(dir, "bad.yaml"), "area: marketing\ntemplates: []\n");
    expect(() => loadPlaybooks(dir)).toThrow(/playbooks\/bad\.yaml/);
  });
});
