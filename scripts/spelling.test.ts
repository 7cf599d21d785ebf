/**
 * One spelling per word in identifiers (docs/development.md, "Names"): the
 * product's own words as its API spells them (`analyse`, `analysing`,
 * `analysis_review`), every other word as the platform and our libraries do
 * (`normalize`, `summarize`, `authorize`, `serialize`). Prose in comments and
 * docs is not checked.
 */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const repo = new URL("../", import.meta.url);

/** The TypeScript files under `dir`, skipping dependencies and builds. */
function sources(dir: string): string[] {
  return readdirSync(new URL(dir, repo), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return ["node_modules", "dist", ".tmp"].includes(entry.name) ? [] : sources(path);
    return /\.tsx?$/.test(entry.name) ? [path] : [];
  });
}

/** Identifier-like tokens of a line: camelCase, PascalCase with a second capital, snake_case or kebab-case ids. */
function identifiers(line: string): string[] {
  return (line.match(/[A-Za-z][A-Za-z0-9]*(?:[_-][A-Za-z0-9]+)*/g) ?? []).filter(
    (token) => /[a-z][A-Z]/.test(token) || /[_-]/.test(token),
  );
}

const BRITISH_IZE =
  /(normal|summar|serial|organ|initial|author|sanit|optim|minim|maxim|priorit|categor|visual|synchron|standard|capital|random|token|memo|final|special|local)is(e|ed|es|er|ing|ation)/i;

describe("spelling of identifiers", () => {
  const files = ["packages", "services", "scripts", "tests", "bench"].flatMap(sources);

  it("spells analyse the British way, as the API's values do (the SQL keyword ANALYZE aside)", () => {
    const found: string[] = [];
    for (const path of files) {
      readFileSync(new URL(path, repo), "utf8")
        .split("\n")
        .forEach((text, i) => {
          // A job's former name stays known to the worker (packages/runtime/src/jobs.ts, FORMER_NAMES).
          if (text.includes('"analyze-experiment"')) return;
          const words = (text.match(/[A-Za-z]*[Aa]nalyz[A-Za-z]*/g) ?? []).filter((w) => w !== "ANALYZE");
          if (words.length > 0 && path !== "scripts/spelling.test.ts")
            found.push(`${path}:${i + 1}: ${words.join(", ")}`);
        });
    }
    expect(found).toEqual([]);
  });

  it("spells every other -ize word the American way in identifiers", () => {
    const found: string[] = [];
    for (const path of files) {
      if (path === "scripts/spelling.test.ts") continue;
      readFileSync(new URL(path, repo), "utf8")
        .split("\n")
        .forEach((text, i) => {
          if (/^\s*(\*|\/\/|\/\*\*)/.test(text)) return;
          const words = identifiers(text).filter((w) => BRITISH_IZE.test(w));
          if (words.length > 0) found.push(`${path}:${i + 1}: ${words.join(", ")}`);
        });
    }
    expect(found).toEqual([]);
  });
});
