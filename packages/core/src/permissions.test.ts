import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  ACTOR_ROLES,
  type ActorRole,
  authorize,
  DomainError,
  newKeyScopes,
  OPERATIONS,
  type Operation,
  PERMISSIONS,
  permissionOf,
  refusalOf,
  roleMay,
  rolesFor,
  type ScopedActor,
} from "./index";

const actor = (role: ActorRole, scopes?: ScopedActor["scopes"]): ScopedActor => ({
  id: `${role}-id`,
  name: `${role}@acme.example`,
  role,
  ...(scopes ? { scopes } : {}),
});

function refusal(who: ScopedActor, operation: (typeof OPERATIONS)[number]) {
  const error = refusalOf(who, operation);
  return error === null ? null : { code: error.code, details: error.details, message: error.message };
}

describe("the permissions table", () => {
  it("has one row per operation, each with roles, and scopes unless it qualifies another operation", () => {
    expect(Object.keys(PERMISSIONS)).toEqual([...OPERATIONS]);
    for (const operation of OPERATIONS) {
      const row = permissionOf(operation);
      expect(row.roles.length, operation).toBeGreaterThan(0);
      expect(row.summary, operation).toMatch(/^[a-z]/);
      if (row.within === undefined) expect(row.scopes.length, operation).toBeGreaterThan(0);
      else {
        expect(row.scopes, operation).toEqual([]);
        expect(permissionOf(row.within).within, `${operation} widens a plain operation`).toBeUndefined();
        // A qualifier only narrows who passes a per-object rule: its roles may all do the operation it widens.
        for (const role of row.roles) expect(roleMay(role, row.within), `${role} ${operation}`).toBe(true);
      }
    }
  });

  // The rules below are written out by hand from the security decisions, independently of the table.
  it("agents and the worker never decide a gate; agents get agents_cannot_decide", () => {
    expect(rolesFor("gate.decide")).toEqual(["admin", "member", "approver"]);
    expect(refusal(actor("agent"), "gate.decide")).toMatchObject({
      code: "agents_cannot_decide",
      details: { operation: "gate.decide", role: "agent" },
    });
    expect(refusal(actor("system"), "gate.decide")).toMatchObject({ code: "forbidden" });
    expect(rolesFor("gate.decide_any")).toEqual(["admin"]);
    expect(rolesFor("gate.decide_unassigned")).toEqual(["admin", "approver"]);
  });

  it("agents apply, activate and abandon no outcome and generate no portfolio; only admins revise others' outcomes", () => {
    for (const operation of ["outcome.apply", "outcome.activate", "outcome.abandon", "portfolio.generate"] as const) {
      expect(rolesFor(operation), operation).toEqual(["admin", "member", "approver"]);
    }
    expect(refusal(actor("agent"), "outcome.apply")?.message).toBe(
      "agents cannot apply outcomes; a person applies outcome.yaml",
    );
    expect(rolesFor("outcome.revise_any")).toEqual(["admin"]);
    expect(rolesFor("experiment.report_built_any")).toEqual(["admin"]);
  });

  it("the workspace's administration is admins' only, with the admin scope, and write to change it", () => {
    for (const operation of ["key.list", "workspace.export"] as const) {
      expect(permissionOf(operation), operation).toMatchObject({ roles: ["admin"], scopes: ["admin"] });
    }
    for (const operation of [
      "key.create",
      "key.revoke",
      "settings.update",
      "secret.set",
      "secret.delete",
      "workspace.import",
    ] as const) {
      expect(permissionOf(operation), operation).toMatchObject({ roles: ["admin"], scopes: ["admin", "write"] });
    }
  });

  it("every read operation needs read only, and every role may do it: a read key reads everything its role can", () => {
    const reads = OPERATIONS.filter((op) => permissionOf(op).scopes.includes("read"));
    expect(reads).toEqual([
      "outcome.read",
      "experiment.read",
      "gate.read",
      "learning.read",
      "audit.read",
      "usage.read",
      "settings.read",
      "secret.list",
      "member.list",
    ]);
    for (const operation of reads) {
      expect(permissionOf(operation).scopes, operation).toEqual(["read"]);
      for (const role of ["admin", "member", "approver", "viewer", "agent"] as const) {
        expect(refusalOf(actor(role, ["read"]), operation), `${role} ${operation}`).toBeNull();
      }
    }
  });

  it("a viewer reads everything a member reads and changes nothing", () => {
    const viewer = OPERATIONS.filter((op) => roleMay("viewer", op));
    expect(viewer).toEqual([
      "outcome.read",
      "experiment.read",
      "gate.read",
      "learning.read",
      "audit.read",
      "usage.read",
      "settings.read",
      "secret.list",
      "member.list",
    ]);
    for (const operation of OPERATIONS) {
      if (permissionOf(operation).within !== undefined) continue;
      const readOnly = permissionOf(operation).scopes.every((scope) => scope === "read");
      expect(roleMay("viewer", operation), operation).toBe(readOnly);
      if (readOnly) expect(roleMay("member", operation), operation).toBe(true);
    }
    // A qualifier widens a change: none is a viewer's.
    for (const operation of OPERATIONS.filter((op) => permissionOf(op).within !== undefined)) {
      expect(roleMay("viewer", operation), operation).toBe(false);
    }
  });

  it("a viewer is told it reads only and which role to ask an admin for, never an agent's refusal", () => {
    expect(refusal(actor("viewer"), "experiment.propose")).toEqual({
      code: "forbidden",
      message: "a viewer reads only; ask an admin for the member role to propose a hypothesis for an active outcome",
      details: { role: "viewer", operation: "experiment.propose" },
    });
    // The rows that refuse agents with their own words and code.
    expect(refusal(actor("viewer"), "gate.decide")).toMatchObject({
      code: "forbidden",
      message:
        "a viewer reads only; ask an admin for the member role to decide a gate assigned to you " +
        "(as an assignee, its backup or its escalation target), resumes included",
    });
    expect(refusal(actor("viewer"), "outcome.apply")?.message).toBe(
      "a viewer reads only; ask an admin for the member role to create an outcome from outcome.yaml, or revise one you own",
    );
    // What only an admin does: the admin role, even to a viewer whose key asks for the admin scope.
    expect(refusal(actor("viewer"), "key.create")).toEqual({
      code: "forbidden",
      message: "a viewer reads only; ask an admin for the admin role to create an API key",
      details: { role: "viewer", operation: "key.create" },
    });
    expect(refusal(actor("viewer", ["read"]), "workspace.export")?.message).toBe(
      "a viewer reads only; ask an admin for the admin role to export the workspace (JSON tables and the signal points as CSV)",
    );
    // What no person does.
    expect(refusal(actor("viewer"), "experiment.move_under_closed_outcome")?.message).toMatch(
      /^a viewer reads only, and may not move an experiment whose outcome is over/,
    );
    // The others keep the row's refusal.
    expect(refusal(actor("agent"), "outcome.apply")?.message).toBe(
      "agents cannot apply outcomes; a person applies outcome.yaml",
    );
    expect(refusal(actor("member"), "key.create")?.message).toBe("only an admin can create API keys");
  });

  it("the worker may pause and analyse (also under an outcome that is over), and nothing a face offers besides", () => {
    expect(OPERATIONS.filter((op) => roleMay("system", op))).toEqual([
      "experiment.pause",
      "experiment.analyse",
      "experiment.move_under_closed_outcome",
    ]);
  });
});

describe("authorize", () => {
  it("lets a caller pass when its role and its key's scopes allow the operation", () => {
    expect(() => authorize({ principal: actor("agent") }, "experiment.claim")).not.toThrow();
    expect(() => authorize({ principal: actor("admin", ["read", "write", "admin"]) }, "key.create")).not.toThrow();
  });

  it("refuses a role first, whatever the key, with the row's message and the operation in the details", () => {
    const error = (() => {
      try {
        authorize({ principal: actor("member", ["read"]) }, "key.create");
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({
      code: "forbidden",
      message: "only an admin can create API keys",
      details: { role: "member", operation: "key.create" },
    });
  });

  it("then names the first missing scope of the operation, how to get a key with it, and every scope it needs", () => {
    expect(refusal(actor("admin", ["read", "admin"]), "settings.update")).toEqual({
      code: "forbidden",
      message:
        'this API key lacks the "write" scope (it has: read, admin); ask an admin for a key with it: ' +
        "outcome-runtime keys create --name admin@acme.example --role admin --scopes read,write,admin",
      details: {
        missingScope: "write",
        scopes: ["read", "admin"],
        operation: "settings.update",
        requiredScopes: ["admin", "write"],
      },
    });
    expect(refusal(actor("admin", ["read", "write"]), "settings.update")?.details).toMatchObject({
      missingScope: "admin",
    });
    expect(refusal(actor("agent", ["read"]), "experiment.claim")?.details).toMatchObject({
      missingScope: "write",
      operation: "experiment.claim",
    });
  });

  it("an actor made in code (no key) has its role's scopes", () => {
    for (const role of ACTOR_ROLES) {
      for (const operation of OPERATIONS) {
        expect(refusalOf(actor(role), operation) === null, `${role} ${operation}`).toBe(roleMay(role, operation));
      }
    }
  });
});

describe("newKeyScopes", () => {
  const admin = actor("admin");
  const codeOf = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return (e as DomainError).code;
    }
    return null;
  };

  it("defaults to what the role can hold, within the creator's key", () => {
    expect(newKeyScopes(admin, "admin", undefined)).toEqual(["read", "write", "admin"]);
    expect(newKeyScopes(admin, "agent", undefined)).toEqual(["read", "write"]);
    expect(newKeyScopes(actor("admin", ["write", "admin"]), "member", undefined)).toEqual(["write"]);
    expect(newKeyScopes(admin, "viewer", undefined)).toEqual(["read"]);
    expect(newKeyScopes(admin, "viewer", ["read"])).toEqual(["read"]);
  });

  it("refuses a viewer key any scope but read, naming the scope, the role and the role that holds it", () => {
    const thrown = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        const error = e as DomainError;
        return { code: error.code, message: error.message, details: error.details };
      }
      return null;
    };
    expect(thrown(() => newKeyScopes(admin, "viewer", ["read", "write"]))).toEqual({
      code: "validation_failed",
      message:
        "a viewer key cannot have the write scope (a viewer key holds read only); a key with it needs --role member",
      details: { field: "scopes", role: "viewer", scopes: ["write"] },
    });
    expect(thrown(() => newKeyScopes(admin, "viewer", ["admin"]))).toMatchObject({
      code: "validation_failed",
      message:
        "a viewer key cannot have the admin scope (a viewer key holds read only); a key with it needs --role admin",
    });
    expect(thrown(() => newKeyScopes(admin, "member", ["read", "admin"]))).toMatchObject({
      code: "validation_failed",
      message:
        "a member key cannot have the admin scope (a member key holds read, write only); a key with it needs --role admin",
    });
  });

  it("keeps asked scopes in canonical order and refuses unknown, none, beyond the role or beyond the creator", () => {
    expect(newKeyScopes(admin, "member", ["write", "read", "write"])).toEqual(["read", "write"]);
    expect(codeOf(() => newKeyScopes(admin, "member", ["delete"]))).toBe("validation_failed");
    expect(codeOf(() => newKeyScopes(admin, "member", []))).toBe("validation_failed");
    expect(codeOf(() => newKeyScopes(admin, "member", ["admin"]))).toBe("validation_failed");
    expect(codeOf(() => newKeyScopes(actor("admin", ["write", "admin"]), "member", ["read"]))).toBe("forbidden");
    // A viewer's key by default, made with a key without read: no empty key, the missing scope named.
    expect(() => newKeyScopes(actor("admin", ["write", "admin"]), "viewer", undefined)).toThrow(
      expect.objectContaining({
        code: "forbidden",
        message: "your API key lacks the read scope, so it cannot give it to a new key",
        details: { missingScope: "read" },
      }),
    );
  });
});

describe("docs/security.md", () => {
  const doc = readFileSync(new URL("../../../docs/security.md", import.meta.url), "utf8");
  const section = doc.slice(
    doc.indexOf("## Who can do what"),
    doc.indexOf("\n## ", doc.indexOf("## Who can do what") + 1),
  );

  /** One row of the matrix as the page writes it. */
  function row(operation: Operation): string {
    const p = permissionOf(operation);
    const what = p.within ? `↳ within \`${p.within}\`: ${p.summary}` : p.summary;
    const marks = ACTOR_ROLES.map((role) => (roleMay(role, operation) ? "✓" : "·"));
    const scopes = p.within ? `those of \`${p.within}\`` : p.scopes.map((s) => `\`${s}\``).join(" + ");
    return `| \`${operation}\` | ${what} | ${marks.join(" | ")} | ${scopes} |`;
  }

  /** A table line with its cells trimmed (the formatter pads them to the widest). */
  const cells = (line: string) =>
    line
      .split("|")
      .map((cell) => cell.trim())
      .join(" | ")
      .trim();

  it('"Who can do what" shows the table: every operation, its roles and its scopes, and nothing else', () => {
    const lines = section.split("\n").map(cells);
    expect(lines).toContain(cells(`| operation | what it is | ${ACTOR_ROLES.join(" | ")} | key scopes |`));
    const documented = lines.filter((line) => line.startsWith("| `"));
    expect(documented).toEqual(OPERATIONS.map((operation) => cells(row(operation))));
  });
});

describe("the one place", () => {
  const repo = new URL("../../../", import.meta.url);
  /**
   * Role comparisons and scope choices; the same search as `grep -rnE` in
   * docs/security.md. Our roles compared by name, a role looked up in a
   * list or switched on, a scope picked by helper, by method or by a tool's
   * read-only hint, a route → scope table.
   */
  const DECISIONS = [
    /\brole\s*[!=]==?\s*["'](admin|member|approver|viewer|agent|system)["']/,
    /["'](admin|member|approver|viewer|agent|system)["']\s*[!=]==?\s*[A-Za-z_.?]*role\b/,
    /\.includes\([A-Za-z_.?]*\.role\)/,
    /switch\s*\([A-Za-z_.?]*\.role\)/,
    /\b(missingScope|scopesOf|roleScopes)\(/,
    /readOnlyHint\s*\?/,
    /ROUTE_SCOPES|requiredScopes\(/,
    /\?\s*["']read["']\s*:\s*["']write["']/,
  ];

  /** The source files under `dir` (a path from the repository's root), skipping dependencies, builds, migrations. */
  function sources(dir: string): string[] {
    return readdirSync(new URL(dir, repo), { withFileTypes: true }).flatMap((entry) => {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) return ["node_modules", "dist", "migrations"].includes(entry.name) ? [] : sources(path);
      return /\.tsx?$/.test(entry.name) && !/\.test\.ts$/.test(entry.name) ? [path] : [];
    });
  }

  it("no source file outside permissions.ts decides who may do what", () => {
    const found: string[] = [];
    for (const path of [...sources("packages"), ...sources("services")]) {
      if (path === "packages/core/src/permissions.ts") continue;
      readFileSync(new URL(path, repo), "utf8")
        .split("\n")
        .forEach((text, i) => {
          if (DECISIONS.some((pattern) => pattern.test(text))) found.push(`${path}:${i + 1}: ${text.trim()}`);
        });
    }
    expect(found).toEqual([]);
  });
});
