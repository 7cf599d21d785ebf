/**
 * Path scope checks for experiment builds: which changed paths fall under a
 * set of globs (`forbidden_paths`, `allowed_paths` of an outcome).
 */
import picomatch from "picomatch";

/**
 * Return the `paths` matched by at least one of `globs`, in input order.
 * Globs use picomatch syntax (`**`, `*`, `{a,b}`); dotfiles match too, since a
 * forbidden `infra/**` must also cover `infra/.env`. A leading `./` on a path is
 * ignored.
 *
 * @example matchPaths(["src/pay/a.ts", "README.md"], ["src/pay/**"]) // ["src/pay/a.ts"]
 */
export function matchPaths(paths: readonly string[], globs: readonly string[]): string[] {
  if (globs.length === 0) return [];
  const isMatch = picomatch([...globs], { dot: true });
  return paths.filter((p) => isMatch(p.replace(/^\.\//, "")));
}
