/**
 * Path scope checks for experiment builds: which changed paths fall under a
 * set of globs (`forbidden_paths`, `allowed_paths` of an outcome).
 */
import picomatch from "picomatch";

/**
 * Return the `paths` matched by at least one of `globs`, in input order (the
 * paths as given, not normalised).
 *
 * Globs use picomatch syntax (`**`, `*`, `{a,b}`); dotfiles match too, since a
 * forbidden `infra/**` must also cover `infra/.env`. A path comes from an LLM
 * or an agent, so it is read the way a file system would resolve it before it
 * is matched (see {@link normalizeRepoPath}): `a/x/../b`, `./a/b`, `a//b`,
 * `a\b`, `/a/b`, `a/b/` and `%2e%2e` all name the file they lead to. The match
 * ignores case, because on a case-insensitive checkout (macOS, Windows)
 * `Apps/Web/x.ts` writes `apps/web/x.ts`; a forbidden list errs on the side of
 * refusing.
 *
 * @example matchPaths(["src/pay/a.ts", "README.md"], ["src/pay/**"]) // ["src/pay/a.ts"]
 */
export function matchPaths(paths: readonly string[], globs: readonly string[]): string[] {
  if (globs.length === 0) return [];
  const isMatch = picomatch(
    globs.map((g) => g.normalize("NFC")),
    { dot: true, nocase: true },
  );
  return paths.filter((p) => isMatch(normalizeRepoPath(p)));
}

/**
 * A repository-relative path in canonical form: percent-escapes decoded,
 * backslashes as `/`, Unicode in NFC, empty and `.` segments dropped, `..`
 * resolved against the segment before it and clamped at the repository root
 * (`../a` is `a`), no leading or trailing `/`.
 *
 * Look-alike characters (Cyrillic `а`, fullwidth `／`) are kept: they name
 * other files, not the one they resemble.
 *
 * @example normalizeRepoPath("./apps/web/src/checkout/../payments//x.ts") // "apps/web/src/payments/x.ts"
 */
function normalizeRepoPath(path: string): string {
  const segments: string[] = [];
  for (const segment of decodePercent(path).normalize("NFC").replace(/\\/g, "/").split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") segments.pop();
    else segments.push(segment);
  }
  return segments.join("/");
}

/** Decodes percent-escapes, repeatedly (`%252e` is `%2e` is `.`), leaving a malformed escape as it is. */
function decodePercent(path: string): string {
  let current = path;
  for (let i = 0; i < 4 && current.includes("%"); i++) {
    let next: string;
    try {
      next = decodeURIComponent(current);
    } catch {
      return current;
    }
    if (next === current) return current;
    current = next;
  }
  return current;
}
