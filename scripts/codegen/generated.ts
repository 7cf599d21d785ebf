/**
 * Checked-in generated files: what `pnpm gen:types` writes, and what
 * `pnpm gen:types --check` compares with the files on disk.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** One generated file as its source renders it now. */
export interface Generated {
  /** Where it is checked in, relative to the repository's root. */
  readonly path: string;
  /** What it is generated from, for the messages (a file, or a description). */
  readonly source: string;
  /** Its full text. */
  readonly text: string;
}

/** A checked-in file that differs from what its source renders now. */
export interface Stale {
  readonly path: string;
  readonly source: string;
  readonly state: "missing" | "stale";
}

/** The files of `generated` whose checked-in copy (under `root`) is missing or differs. */
export function staleFiles(generated: readonly Generated[], root: string = ROOT): Stale[] {
  const stale: Stale[] = [];
  for (const file of generated) {
    let current: string | undefined;
    try {
      current = readFileSync(resolve(root, file.path), "utf8");
    } catch {
      current = undefined;
    }
    if (current !== file.text) {
      stale.push({ path: file.path, source: file.source, state: current === undefined ? "missing" : "stale" });
    }
  }
  return stale;
}

/** What `--check` prints for stale files: one line each, then what to run. */
export function staleMessage(stale: readonly Stale[]): string {
  const lines = stale.map((s) => `${s.path} is ${s.state}: it no longer matches ${s.source}.`);
  return `${lines.join("\n")}\n  run: pnpm gen:types (tsx scripts/gen-types.ts) and commit the result`;
}

/** Write every file of `generated` under `root`. */
export function writeGenerated(generated: readonly Generated[], root: string = ROOT): void {
  for (const file of generated) writeFileSync(resolve(root, file.path), file.text);
}
