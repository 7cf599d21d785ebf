/**
 * Keyset pagination on `(created_at, id)`, newest first (or oldest first where a
 * list reads in the order things happened). A cursor is opaque to clients:
 * base64url of the last row's timestamp and id. It carries no workspace: every
 * paged query is scoped to the caller's workspace, so a cursor from another
 * workspace can only select rows the caller could already read.
 */
import { DomainError } from "@outcome-runtime/core";
import { type ExpressionBuilder, sql } from "kysely";

export interface Page<T> {
  readonly items: T[];
  /** Pass back as `cursor` to get the next page; `null` on the last page. */
  readonly nextCursor: string | null;
}

export interface PageRequest {
  readonly cursor?: string | undefined;
  /** Page size, 1–200 (default 50). */
  readonly limit?: number | undefined;
}

/** A row id as Postgres prints a uuid. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface CursorPosition {
  /** `created_at` to the microsecond, as Postgres prints it in UTC (a JS Date keeps only milliseconds). */
  readonly createdAt: string;
  readonly id: string;
}

function encodeCursor(position: CursorPosition): string {
  return Buffer.from(`${position.createdAt}|${position.id}`).toString("base64url");
}

/** Select this with a page's rows: the exact `created_at` the cursor carries. */
export const cursorTs = sql<string>`to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as(
  "cursor_ts",
);

/**
 * The keyset condition "after the cursor" for tables ordered by `(created_at, id)`,
 * descending (the default) or ascending.
 *
 * @throws DomainError `validation_failed` (field `cursor`) when the cursor was not made by a page.
 */
export function pageAfter(cursor: string, order: "desc" | "asc" = "desc") {
  const c = decodeCursor(cursor);
  const beyond = order === "desc" ? "<" : ">";
  // biome-ignore lint/suspicious/noExplicitAny: shared by every table with created_at and id
  return (eb: ExpressionBuilder<any, any>) =>
    eb.or([
      eb("created_at", beyond, sql<Date>`${c.createdAt}::timestamptz`),
      eb.and([eb("created_at", "=", sql<Date>`${c.createdAt}::timestamptz`), eb("id", beyond, c.id)]),
    ]);
}

/** @throws DomainError `validation_failed` when the cursor was not made by `encodeCursor`. */
function decodeCursor(cursor: string): CursorPosition {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  const [createdAt, id] = text.split("|");
  if (
    createdAt === undefined ||
    id === undefined ||
    !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/.test(createdAt) ||
    !UUID.test(id)
  ) {
    throw new DomainError(
      "validation_failed",
      `cursor "${cursor}" is not valid; use the nextCursor of a previous page`,
      {
        field: "cursor",
      },
    );
  }
  return { createdAt, id };
}

export function pageLimit(request: PageRequest): number {
  return Math.min(Math.max(Math.trunc(request.limit ?? 50), 1), 200);
}

/** Cut one extra fetched row into `nextCursor`. */
export function toPage<R extends { cursor_ts: string; id: string }, T>(
  rows: R[],
  limit: number,
  map: (row: R) => T,
): Page<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const last = kept.at(-1);
  return {
    items: kept.map(map),
    nextCursor: more && last ? encodeCursor({ createdAt: last.cursor_ts, id: last.id }) : null,
  };
}
