/**
 * Keyset pagination on `(created_at, id)`, newest first. A cursor is opaque to
 * clients: base64url of the last row's timestamp and id.
 */
import { DomainError } from "@outcome-runtime/core";

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

export interface CursorPosition {
  readonly createdAt: Date;
  readonly id: string;
}

export function encodeCursor(position: CursorPosition): string {
  return Buffer.from(`${position.createdAt.toISOString()}|${position.id}`).toString("base64url");
}

/** @throws DomainError `validation_failed` when the cursor was not made by `encodeCursor`. */
export function decodeCursor(cursor: string): CursorPosition {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  const [iso, id] = text.split("|");
  const createdAt = new Date(iso ?? "");
  if (id === undefined || Number.isNaN(createdAt.getTime()) || !/^[0-9a-f-]{36}$/.test(id)) {
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
export function toPage<R extends { created_at: Date; id: string }, T>(
  rows: R[],
  limit: number,
  map: (row: R) => T,
): Page<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const last = kept.at(-1);
  return {
    items: kept.map(map),
    nextCursor: more && last ? encodeCursor({ createdAt: last.created_at, id: last.id }) : null,
  };
}
