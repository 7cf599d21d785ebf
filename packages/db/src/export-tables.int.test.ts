/**
 * Every table of the migrated database is either exported or left out with a
 * reason (packages/core/src/export-tables.ts): a migration that adds a table
 * fails here until the table is put in one of the two lists.
 */
import { EXPORT_TABLES, NOT_EXPORTED } from "@outcome-runtime/core";
import { createTestDatabase, type TestDatabase } from "@outcome-runtime/testing";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

describe("the export's table lists", () => {
  let t: TestDatabase;
  let relations: string[];
  beforeAll(async () => {
    t = await createTestDatabase({ max: 2 });
    const result = await sql<{ name: string }>`
      SELECT table_name AS name FROM information_schema.tables
      WHERE table_schema = current_schema() ORDER BY table_name`.execute(t.db);
    relations = result.rows.map((r) => r.name);
  });
  afterAll(async () => {
    await t.drop();
  });

  it("name every table and view of the database, once", () => {
    const exported = new Set<string>(EXPORT_TABLES);
    const unlisted = relations.filter((name) => !exported.has(name) && !Object.hasOwn(NOT_EXPORTED, name));
    expect(unlisted, "add each to EXPORT_ROW_TABLES or to NOT_EXPORTED (with why)").toEqual([]);
    expect(Object.keys(NOT_EXPORTED).filter((name) => exported.has(name))).toEqual([]);
  });

  it("name no table the database does not have", () => {
    const known = new Set(relations);
    expect([...EXPORT_TABLES, ...Object.keys(NOT_EXPORTED)].filter((name) => !known.has(name))).toEqual([]);
  });

  it("give a reason for every table left out", () => {
    for (const [table, why] of Object.entries(NOT_EXPORTED)) expect(why.trim(), table).not.toBe("");
  });
});
