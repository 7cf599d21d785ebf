/**
 * Property tests for `parseOutcome` on hostile input (issue 9, "Hostile
 * input"): it never throws, never falls back to `internal_error` (the
 * catch-all that would hide a bug), and every diagnostic it returns carries a
 * 1-based position, a registered code and a message.
 *
 * Seeded for CI: `FC_SEED` (default 20261201) and `FC_RUNS` (default 200).
 * The longer local run:
 *   FC_RUNS=10000 pnpm vitest run packages/spec/src/properties.test.ts
 * A failure prints the seed and the shrunk counterexample; replay it with
 * `FC_SEED=<seed>`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { DIAGNOSTIC_CODES, type ParseResult, parseOutcome } from "./index.js";

// biome-ignore lint/style/noProcessEnv: the test's own knobs (seed and run count), read once here
const seed = Number(process.env.FC_SEED ?? 20261201);
// biome-ignore lint/style/noProcessEnv: as above
const numRuns = Number(process.env.FC_RUNS ?? 200);
const params = { seed, numRuns };
/** Long runs need more than vitest's 5 s default. */
const timeout = Math.max(30_000, numRuns * 50);

const read = (relative: string): string => readFileSync(fileURLToPath(new URL(relative, import.meta.url)), "utf8");
const examplesDir = "../../../examples/outcomes/";
const valid: readonly string[] = [
  read("../../../outcome.example.yaml"),
  ...readdirSync(fileURLToPath(new URL(examplesDir, import.meta.url)))
    .filter((name) => name.endsWith(".yaml"))
    .sort()
    .map((name) => read(`${examplesDir}${name}`)),
];
const validData: readonly unknown[] = valid.map((text) => parseYaml(text) as unknown);

/** Runs `parseOutcome` and checks the invariants every result must hold. */
function checkResult(source: string): ParseResult {
  let result: ParseResult | undefined;
  expect(() => {
    result = parseOutcome(source);
  }).not.toThrow();
  const r = result as ParseResult;
  if (r.ok) {
    expect(typeof r.contentHash).toBe("string");
    return r;
  }
  expect(r.errors.length).toBeGreaterThan(0);
  for (const d of r.errors) {
    expect(Number.isInteger(d.line) && d.line >= 1, `line of ${JSON.stringify(d)}`).toBe(true);
    expect(Number.isInteger(d.column) && d.column >= 1, `column of ${JSON.stringify(d)}`).toBe(true);
    expect(d.code in DIAGNOSTIC_CODES, `registered code: ${d.code}`).toBe(true);
    expect(d.code, `internal_error on ${JSON.stringify(source.slice(0, 200))}: ${d.message}`).not.toBe(
      "internal_error",
    );
    expect(typeof d.message === "string" && d.message.length > 0).toBe(true);
    expect(typeof d.pointer).toBe("string");
  }
  return r;
}

/** Characters that matter to YAML, plus unicode edge cases. */
const yamlChar = fc.constantFrom(
  ..."abc019:-?,[]{}#&*!|>'\"%@` \t\n\r.~".split(""),
  "\u0000",
  "\uFEFF",
  "\uD800",
  "\uDC00",
  "\u202E",
  "😀",
  "\u2028",
);
const yamlish = fc.array(yamlChar, { maxLength: 400 }).map((chars) => chars.join(""));

/** Leaf values a mutation may put in place of any value of a valid outcome. */
const hostileLeaf: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom("", "5%", "-5%", "1e309%", "NaN", "0d", "-1h", "99999999999999999999d", "∞", "null", "~"),
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
);

type Mutation =
  | { op: "set"; at: number; value: unknown }
  | { op: "delete"; at: number }
  | { op: "rename"; at: number; key: string }
  | { op: "add"; at: number; key: string; value: unknown };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("set" as const), at: fc.nat(), value: hostileLeaf }),
  fc.record({ op: fc.constant("delete" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("rename" as const), at: fc.nat(), key: fc.string({ maxLength: 12 }) }),
  fc.record({ op: fc.constant("add" as const), at: fc.nat(), key: fc.string({ maxLength: 12 }), value: hostileLeaf }),
);

type Container = Record<string, unknown> | unknown[];

/** Every (container, key) slot in a value, depth first. */
function slots(value: unknown, out: Array<[Container, string | number]> = []): Array<[Container, string | number]> {
  if (Array.isArray(value)) {
    value.forEach((child, i) => {
      out.push([value, i]);
      slots(child, out);
    });
  } else if (value !== null && typeof value === "object") {
    for (const [key, child] of Object.entries(value)) {
      out.push([value as Record<string, unknown>, key]);
      slots(child, out);
    }
  }
  return out;
}

function mutate(data: unknown, mutations: readonly Mutation[]): unknown {
  const copy = structuredClone(data);
  for (const m of mutations) {
    const all = slots(copy);
    if (all.length === 0) break;
    const [container, key] = all[m.at % all.length] as [Container, string | number];
    const target = container as Record<string | number, unknown>;
    switch (m.op) {
      case "set":
        target[key] = m.value;
        break;
      case "delete":
        if (Array.isArray(container)) container.splice(key as number, 1);
        else delete target[key];
        break;
      case "rename":
        if (!Array.isArray(container)) {
          target[m.key] = target[key];
          if (m.key !== key) delete target[key];
        }
        break;
      case "add": {
        const child = target[key];
        if (Array.isArray(child)) child.push(m.value);
        else if (child !== null && typeof child === "object") (child as Record<string, unknown>)[m.key] = m.value;
        else target[key] = { [m.key]: m.value };
        break;
      }
    }
  }
  return copy;
}

describe("parseOutcome never throws and always explains itself", () => {
  it("on arbitrary strings (full unicode, lone surrogates included)", { timeout }, () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 2000 }), (text) => {
        checkResult(text);
      }),
      params,
    );
  });

  it("on YAML-ish text built from YAML's structural characters", { timeout }, () => {
    fc.assert(
      fc.property(yamlish, (text) => {
        checkResult(text);
      }),
      params,
    );
  });

  it("on arbitrary JSON-able documents, as YAML and as JSON", { timeout }, () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.boolean(), (value, asJson) => {
        checkResult(asJson ? JSON.stringify(value) : stringifyYaml(value));
      }),
      params,
    );
  });

  it("on valid outcomes with values and keys mutated", { timeout }, () => {
    fc.assert(
      fc.property(
        fc.nat({ max: validData.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 6 }),
        (index, mutations) => {
          checkResult(stringifyYaml(mutate(validData[index], mutations)));
        },
      ),
      params,
    );
  });

  it("on valid outcome text cut, spliced and with characters inserted", { timeout }, () => {
    fc.assert(
      fc.property(
        fc.nat({ max: valid.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 40 }), fc.string({ unit: "binary", maxLength: 8 })), {
          minLength: 1,
          maxLength: 5,
        }),
        (index, edits) => {
          let text = valid[index] as string;
          for (const [at, cut, insert] of edits) {
            const i = at % (text.length + 1);
            text = text.slice(0, i) + insert + text.slice(i + cut);
          }
          checkResult(text);
        },
      ),
      params,
    );
  });

  it("counterexamples found by long runs (FC_RUNS=20000, seed 20261201), kept as regressions", () => {
    // `*` then U+2028 (LINE SEPARATOR, not a line break in YAML 1.2): an alias named U+2028 with no anchor.
    const alias = checkResult("*\u2028");
    expect(alias.ok ? [] : alias.errors).toMatchObject([
      { code: "yaml_syntax", line: 1, column: 1, message: "alias *\\u2028 refers to no anchor" },
    ]);
    expect(checkResult("* ").ok).toBe(false);
    // A merge key whose value is not a mapping: yaml threw "Merge sources must be maps or map aliases".
    for (const text of ["<<: 5", "<<: [1]", 'version:\n  <<: 0\n  "": false\nid: checkout-abandonment\n']) {
      const merge = checkResult(text);
      expect(merge.ok ? [] : merge.errors.map((e) => e.code)).toEqual(["yaml_syntax"]);
    }
  });

  it("accepts every shipped example unchanged (the mutation base is valid)", () => {
    for (const text of valid) expect(checkResult(text).ok).toBe(true);
  });
});
