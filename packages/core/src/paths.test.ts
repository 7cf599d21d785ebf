import { describe, expect, it } from "vitest";
import { matchPaths } from "./paths";

describe("matchPaths", () => {
  const forbidden = ["apps/web/src/payments/**", "services/billing/**", "**/*.sql"];

  it("returns only the paths under a forbidden glob, in order", () => {
    expect(
      matchPaths(
        ["apps/web/src/checkout/Cart.tsx", "services/billing/charge.ts", "db/migrations/001.sql", "README.md"],
        forbidden,
      ),
    ).toEqual(["services/billing/charge.ts", "db/migrations/001.sql"]);
  });

  it("covers dotfiles and ignores a leading ./", () => {
    expect(matchPaths(["./services/billing/.env"], forbidden)).toEqual(["./services/billing/.env"]);
  });

  it("matches nothing with no globs", () => {
    expect(matchPaths(["a.ts"], [])).toEqual([]);
  });
});
