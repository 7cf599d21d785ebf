import { describe, expect, it } from "vitest";
import { forbiddenHits, globBase, placePaths, samplePath } from "./scope-paths";

describe("placePaths", () => {
  it("joins a pattern to the allowed glob whose directory it continues", () => {
    expect(placePaths(["checkout/shipping/**"], ["apps/web/src/checkout/**"])).toEqual({
      paths: ["apps/web/src/checkout/shipping/**"],
      inScope: true,
    });
    expect(placePaths(["components/cart/**"], ["apps/web/src/components/cart/**"]).paths).toEqual([
      "apps/web/src/components/cart/**",
    ]);
  });

  it("puts a pattern under an allowed source root", () => {
    expect(placePaths(["config/tags/**"], ["apps/web/src/**"]).paths).toEqual(["apps/web/src/config/tags/**"]);
  });

  it("falls back to the allowed globs when nothing fits, and says so", () => {
    expect(placePaths(["emails/digest/**"], ["apps/web/src/checkout/**"])).toEqual({
      paths: ["apps/web/src/checkout/**"],
      inScope: false,
    });
  });

  it("anchors patterns anywhere when no allowed_paths are given", () => {
    expect(placePaths(["signup/**", "signup/**"], undefined).paths).toEqual(["**/signup/**"]);
  });
});

describe("forbiddenHits", () => {
  it("finds patterns under forbidden globs, as written or through a sample file", () => {
    expect(
      forbiddenHits(["apps/web/src/payments/**", "apps/web/src/checkout/**"], ["apps/web/src/payments/**"]),
    ).toEqual(["apps/web/src/payments/**"]);
    expect(forbiddenHits(["**/signup/**"], ["**/signup/**"])).toEqual(["**/signup/**"]);
    expect(forbiddenHits(["apps/web/src/checkout/**"], ["**/*.sql"])).toEqual([]);
    expect(forbiddenHits(["db/migrations/**/*.sql"], ["**/*.sql"])).toEqual(["db/migrations/**/*.sql"]);
    expect(forbiddenHits(["a/**"], undefined)).toEqual([]);
  });

  it("helpers: base directory and sample file of a glob", () => {
    expect(globBase("apps/web/src/checkout/**")).toBe("apps/web/src/checkout");
    expect(globBase("**/*.sql")).toBe("");
    expect(samplePath("**/signup/{a,b}/*")).toBe("src/signup/a/x/index.ts");
  });
});
