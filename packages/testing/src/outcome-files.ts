import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The repository's `outcome.example.yaml`, as text. */
export function exampleOutcome(): string {
  return readFileSync(fileURLToPath(new URL("../../../outcome.example.yaml", import.meta.url)), "utf8");
}

/**
 * A variant of the example outcome: another `id`, and optional text
 * substitutions (`[from, to]` pairs applied in order; each must match).
 */
export function outcomeVariant(id: string, replacements: readonly [string, string][] = []): string {
  let text = exampleOutcome().replace(/^id: checkout-abandonment$/m, `id: ${id}`);
  for (const [from, to] of replacements) {
    if (!text.includes(from)) throw new Error(`outcomeVariant: "${from}" is not in the example outcome`);
    text = text.replace(from, to);
  }
  return text;
}
