/**
 * Hostile paths against `forbidden_paths` (issue 9, security): an LLM or an
 * agent names the files a change touches, and may dress a forbidden one up.
 */
import { describe, expect, it } from "vitest";
import { matchPaths } from "./paths";

const forbidden = ["apps/web/src/payments/**", "infra/**", "**/*.sql"];
const hits = (path: string): boolean => matchPaths([path], forbidden).length === 1;

describe("matchPaths against path tricks", () => {
  it.each([
    ["apps/web/src/checkout/../payments/x.ts", "a .. segment"],
    ["apps/web/src/checkout/../../src/payments/x.ts", "two .. segments"],
    ["apps/web/src/payments/sub/../x.ts", "a .. inside the forbidden tree"],
    ["apps/../apps/web/src/payments/x.ts", "a .. at the top"],
    ["./apps/web/src/payments/x.ts", "a leading ./"],
    ["apps/./web/./src/payments/x.ts", ". segments"],
    ["apps//web///src/payments/x.ts", "duplicate slashes"],
    ["apps\\web\\src\\payments\\x.ts", "backslashes"],
    ["apps/web\\src/payments\\..\\payments/x.ts", "mixed separators with .."],
    ["/apps/web/src/payments/x.ts", "an absolute path (repository root)"],
    ["//apps/web/src/payments/x.ts", "a double leading slash"],
    ["../apps/web/src/payments/x.ts", "a .. above the root (clamped at the root)"],
    ["apps/web/src/payments/", "a trailing slash (the directory itself)"],
    ["apps/web/src/payments", "the directory without a slash"],
    ["apps/web/src/checkout/%2e%2e/payments/x.ts", "a URL-encoded .. (%2e%2e)"],
    ["apps/web/src/checkout/%2E%2E%2Fpayments/x.ts", "an encoded ../ (%2E%2E%2F)"],
    ["apps/web/src/checkout/%252e%252e/payments/x.ts", "a double-encoded .."],
    ["apps%2fweb%2fsrc%2fpayments%2fx.ts", "encoded slashes"],
    ["apps%5cweb%5csrc%5cpayments%5cx.ts", "encoded backslashes"],
    ["infra/.env", "a dotfile"],
    ["docs/../db/schema.SQL", "an extension in upper case"],
  ])("counts %s as forbidden (%s)", (path) => {
    expect(hits(path)).toBe(true);
  });

  it("returns the paths as given, not their normalised form", () => {
    expect(matchPaths(["README.md", "apps/web/src/checkout/../payments/x.ts"], forbidden)).toEqual([
      "apps/web/src/checkout/../payments/x.ts",
    ]);
  });

  it("ignores case, so a case-insensitive checkout (macOS, Windows) cannot be used to slip past: Apps/Web/Src/Payments/x.ts is forbidden", () => {
    expect(hits("Apps/Web/Src/Payments/x.ts")).toBe(true);
    expect(hits("INFRA/main.tf")).toBe(true);
  });

  it("reads composed and decomposed Unicode (NFC/NFD) as one path", () => {
    const globs = ["src/caf\u00e9/**"];
    expect(matchPaths(["src/cafe\u0301/menu.ts"], globs)).toEqual(["src/cafe\u0301/menu.ts"]);
    expect(matchPaths(["src/caf\u00e9/menu.ts"], ["src/cafe\u0301/**"])).toEqual(["src/caf\u00e9/menu.ts"]);
  });

  it("does not match look-alike characters: a Cyrillic а or a fullwidth ／ names another file, not the forbidden one", () => {
    expect(hits("apps/web/src/p\u0430yments/x.ts")).toBe(false);
    expect(hits("apps\uff0fweb\uff0fsrc\uff0fpayments\uff0fx.ts")).toBe(false);
  });

  it("leaves allowed paths alone, including ones whose names merely resemble a forbidden tree", () => {
    expect(
      matchPaths(
        [
          "apps/web/src/checkout/Cart.tsx",
          "apps/web/src/payments-ui/x.ts",
          "apps/web/src/payments/../checkout/x.ts",
          "apps/web/src/100%.ts",
          "infrastructure/x.tf",
        ],
        forbidden,
      ),
    ).toEqual([]);
  });

  it("keeps a malformed percent escape as written", () => {
    expect(matchPaths(["infra/%E0%A4%A.tf"], forbidden)).toEqual(["infra/%E0%A4%A.tf"]);
  });
});
