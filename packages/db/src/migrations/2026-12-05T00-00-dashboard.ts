/**
 * The dashboard's live stream reads the analyses written since its last look
 * (every second while a browser is connected): an index on their creation time.
 */
import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE INDEX analyses_created_at_idx ON analyses (created_at)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX analyses_created_at_idx`.execute(db);
}
