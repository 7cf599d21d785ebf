/**
 * Placing a template's path patterns in an outcome's code scope, and checking
 * them against `forbidden_paths`.
 */
import { matchPaths } from "@outcome-runtime/core";

const GLOB_CHARS = /[*?[\]{}!()]/;

/** Directory names that are an application's source root: a pattern may go straight under them. */
const SOURCE_ROOTS: readonly string[] = ["src", "app", "lib", "client", "frontend", "web"];

/** The literal directory a glob starts with: `apps/web/src/checkout/**` → `apps/web/src/checkout`. */
export function globBase(glob: string): string {
  const segments = glob.replace(/^\.\//, "").split("/");
  const literal: string[] = [];
  for (const s of segments) {
    if (GLOB_CHARS.test(s)) break;
    literal.push(s);
  }
  // A glob with no wildcard names a file or directory: its base is the whole path.
  return literal.join("/");
}

/**
 * A concrete file a path pattern stands for, so a pattern can be tested
 * against globs with picomatch: `**` → `x`, `*` → `x`, `{a,b}` → `a`, a
 * leading `**` → `src`, and a file name appended when the pattern ends in a
 * directory.
 */
export function samplePath(pattern: string): string {
  let p = pattern.replace(/^\*\*\//, "src/");
  p = p
    .replace(/\{([^,}]*)[^}]*\}/g, "$1")
    .replace(/\*\*/g, "x")
    .replace(/\*/g, "x");
  const last = p.split("/").pop() ?? "";
  return last.includes(".") ? p : `${p}/index.ts`;
}

/** Whether a path pattern falls under any of `globs` (as written, or through its sample file). */
function patternMatches(pattern: string, globs: readonly string[]): boolean {
  return matchPaths([pattern, samplePath(pattern)], globs).length > 0;
}

export interface PlacedPaths {
  paths: string[];
  /** False when no pattern could be placed inside `allowed_paths` and the allowed globs stand in. */
  inScope: boolean;
}

/**
 * Places template path patterns (relative to the application source root,
 * e.g. `checkout/shipping/**`) in the outcome's scope.
 *
 * - Without `allowed_paths`: each pattern becomes `**\/<pattern>` (wherever the
 *   source root is).
 * - With `allowed_paths`: a pattern is joined to an allowed glob's literal base
 *   where the base ends with the pattern's leading directories
 *   (`apps/web/src/checkout` + `checkout/shipping/**` →
 *   `apps/web/src/checkout/shipping/**`), or put under a base that is a source
 *   root ({@link SOURCE_ROOTS}: `apps/web/src` + `config/tags/**`), and kept
 *   only if the result matches
 *   the allowed globs. When no pattern can be placed, the allowed globs
 *   themselves are returned and `inScope` is false.
 */
export function placePaths(patterns: readonly string[], allowed: readonly string[] | undefined): PlacedPaths {
  if (allowed === undefined || allowed.length === 0) {
    return { paths: unique(patterns.map((p) => `**/${p}`)), inScope: true };
  }
  const placed: string[] = [];
  for (const pattern of patterns) {
    const ps = pattern.split("/");
    for (const glob of allowed) {
      const base = globBase(glob);
      const bs = base === "" ? [] : base.split("/");
      let joined: string | undefined;
      if (bs.length === 0) joined = pattern;
      for (let k = Math.min(bs.length, ps.length - 1); k > 0 && joined === undefined; k--) {
        if (bs.slice(bs.length - k).join("/") === ps.slice(0, k).join("/")) {
          joined = [...bs, ...ps.slice(k)].join("/");
        }
      }
      const root = bs.at(-1);
      if (joined === undefined && root !== undefined && SOURCE_ROOTS.includes(root)) joined = `${base}/${pattern}`;
      if (joined !== undefined && patternMatches(joined, allowed)) {
        placed.push(joined);
        break;
      }
    }
  }
  if (placed.length === 0) return { paths: [...allowed], inScope: false };
  return { paths: unique(placed), inScope: true };
}

/** The paths among `paths` that fall under `forbidden`. */
export function forbiddenHits(paths: readonly string[], forbidden: readonly string[] | undefined): string[] {
  if (forbidden === undefined || forbidden.length === 0) return [];
  return paths.filter((p) => patternMatches(p, forbidden));
}

function unique(items: readonly string[]): string[] {
  return [...new Set(items)];
}
