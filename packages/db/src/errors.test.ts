/**
 * The mapping of Postgres and driver errors to the codes every face reports.
 * The errors are the shapes `pg` and Kysely throw (tests/chaos/r10-pg-terminate.chaos.ts
 * produces the lost connections for real; packages/mcp and services/api check the faces).
 */
import { DomainError } from "@outcome-runtime/core";
import { describe, expect, it } from "vitest";
import { DatabaseError, databaseError } from "./errors";

function pgError(message: string, code?: string): Error {
  return Object.assign(new Error(message), code === undefined ? {} : { code, severity: "ERROR" });
}

describe("databaseError", () => {
  it.each([
    ["a terminated backend (57P01)", pgError("terminating connection due to administrator command", "57P01")],
    ["a crash shutdown (57P02)", pgError("terminating connection due to crash of another server process", "57P02")],
    ["a server starting up (57P03)", pgError("the database system is starting up", "57P03")],
    ["a connection exception (08006)", pgError("connection failure", "08006")],
    ["another 08xxx code (08P01)", pgError("protocol violation", "08P01")],
    ["a refused connection", pgError("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED")],
    ["a reset connection", pgError("read ECONNRESET", "ECONNRESET")],
    ["a connection that ended", pgError("Connection terminated unexpectedly")],
    ["a ROLLBACK on the dead client", pgError("Client has encountered a connection error and is not queryable")],
    ["a closed client", pgError("Client was closed and is not queryable")],
    ["a pool that cannot connect", pgError("timeout exceeded when trying to connect")],
    ["a statement timeout (57014)", pgError("canceling statement due to statement timeout", "57014")],
    ["a cause that is one of these", new Error("query failed", { cause: pgError("x", "57P01") })],
  ])("%s is service_unavailable, retryable, and names no internals", (_, error) => {
    const mapped = databaseError(error);
    expect(mapped).toBeInstanceOf(DatabaseError);
    expect(mapped).toBeInstanceOf(DomainError);
    expect(mapped?.code).toBe("service_unavailable");
    expect(mapped?.retryable).toBe(true);
    expect(mapped?.cause).toBe(error);
    expect(mapped?.message).not.toMatch(/administrator|queryable|ECONN|statement timeout/);
  });

  it.each([
    ["a unique violation (23505)", "23505"],
    ["a serialization failure (40001)", "40001"],
    ["a deadlock (40P01)", "40P01"],
  ])("%s is a retryable conflict", (_, code) => {
    const mapped = databaseError(pgError('duplicate key value violates unique constraint "x"', code));
    expect(mapped?.code).toBe("conflict");
    expect(mapped?.retryable).toBe(true);
    expect(mapped?.message).toBe("the request collided with a concurrent change; retry it");
  });

  it("makes a data exception (class 22) the client's validation_failed, quoting Postgres' reason", () => {
    const mapped = databaseError(pgError('invalid input syntax for type timestamp: "soon"', "22007"));
    expect(mapped?.code).toBe("validation_failed");
    expect(mapped?.retryable).toBe(false);
    expect(mapped?.message).toBe(
      'a value cannot be stored: invalid input syntax for type timestamp: "soon"; correct it and retry',
    );
    expect(databaseError(pgError("invalid byte sequence for encoding", "22021"))?.message).toMatch(/NUL character/);
    expect(databaseError(pgError("unsupported Unicode escape sequence", "22P05"))?.message).toMatch(/NUL character/);
  });

  it("leaves other errors, domain errors and non-errors alone", () => {
    expect(databaseError(new Error("undefined is not a function"))).toBeNull();
    expect(databaseError(pgError('relation "x" does not exist', "42P01"))).toBeNull();
    expect(databaseError(new DomainError("conflict", "taken"))).toBeNull();
    expect(databaseError("57P01")).toBeNull();
    expect(databaseError(null)).toBeNull();
  });
});
