/**
 * Listening for changes to credentials: the triggers of migration
 * `2026-12-14T00-00-auth-change-notify` send `NOTIFY outcome_runtime_auth`
 * (payload `api_key:<id>` or `session:<id>`) in the transaction that revokes,
 * changes or deletes a key or a session, so every listener hears of it when,
 * and only when, it commits.
 *
 * Postgres `LISTEN`, not Redis pub/sub: the notification is part of the
 * revoking transaction (no window between the commit and a publish the
 * process could die in, no notification for a rolled-back change), it reaches
 * exactly the processes on the same database, and a change made by hand in
 * `psql` is announced by the same trigger. One dedicated connection per
 * process (outside the pool: a listening connection must stay checked out).
 */
import pg from "pg";

/** The channel the triggers notify on. */
const AUTH_CHANNEL = "outcome_runtime_auth";

/** A credential whose principal may have changed: drop what is cached for it. */
export type AuthChange =
  | { readonly kind: "api_key"; readonly id: string }
  | { readonly kind: "session"; readonly id: string };

export interface AuthChangeHandlers {
  /** A key or a session changed (delivered after the change committed). */
  readonly onChange: (change: AuthChange) => void;
  /** `LISTEN` is in place: from now on every committed change is delivered. */
  readonly onListening: () => void;
  /**
   * The connection is lost (or could not be made): changes may go unheard
   * until `onListening` is called again. Called once per loss.
   */
  readonly onLost: (error: unknown) => void;
}

export interface AuthChangeListener {
  /**
   * Resolve once every notification Postgres had sent this listener when the
   * call was made has been delivered to `onChange`: a `SELECT 1` on the
   * listening connection, whose answer Postgres sends only after the
   * notifications it owes (a committed revocation has signalled every
   * listening backend before its `COMMIT` returns). Concurrent calls share
   * one query in flight and one queued after it. False when not listening or
   * the query failed: read the database instead.
   */
  readonly sync: () => Promise<boolean>;
  /** Stop listening and close the connection; no handler is called afterwards. */
  readonly close: () => Promise<void>;
}

/** The payload of a notification, or null for one this version does not know. */
function parseChange(payload: string | undefined): AuthChange | null {
  const match = /^(api_key|session):([0-9a-f-]{36})$/.exec(payload ?? "");
  if (match === null) return null;
  return { kind: match[1] as AuthChange["kind"], id: match[2] as string };
}

/**
 * Listen for credential changes on a connection of its own to `url`,
 * reconnecting after a loss (`reconnectMs` later, default 1000 ms; doubling up
 * to 30 s while it keeps failing). Returns at once; `onListening` reports
 * when the `LISTEN` is in place. Connection errors never throw: they go to
 * `onLost`.
 *
 * @param url Postgres URL of the runtime's database.
 * @param options.applicationName shown in `pg_stat_activity` (default `outcome-runtime-auth-listener`).
 */
export function listenForAuthChanges(
  url: string,
  handlers: AuthChangeHandlers,
  options: { reconnectMs?: number; applicationName?: string } = {},
): AuthChangeListener {
  const baseDelay = options.reconnectMs ?? 1000;
  let delay = baseDelay;
  let closed = false;
  let client: pg.Client | null = null;
  let timer: NodeJS.Timeout | null = null;
  let listening: pg.Client | null = null;
  let inFlight: Promise<boolean> | null = null;
  let queued: Promise<boolean> | null = null;

  const connect = () => {
    timer = null;
    if (closed) return;
    const current = new pg.Client({
      connectionString: url,
      application_name: options.applicationName ?? "outcome-runtime-auth-listener",
      connectionTimeoutMillis: 5_000,
      keepAlive: true,
    });
    client = current;
    let lost = false;
    const lose = (error: unknown) => {
      if (lost || closed) return;
      lost = true;
      client = null;
      listening = null;
      current.removeAllListeners("notification");
      current.end().catch(() => {});
      handlers.onLost(error);
      timer = setTimeout(connect, delay);
      timer.unref();
      delay = Math.min(delay * 2, 30_000);
    };
    current.on("error", lose);
    current.on("end", () => lose(new Error("the auth listener's connection ended")));
    current.on("notification", (message) => {
      if (message.channel !== AUTH_CHANNEL) return;
      const change = parseChange(message.payload);
      if (change !== null) handlers.onChange(change);
    });
    current
      .connect()
      .then(() => current.query(`LISTEN ${AUTH_CHANNEL}`))
      .then(() => {
        if (lost || closed) return;
        delay = baseDelay;
        listening = current;
        handlers.onListening();
      })
      .catch(lose);
  };
  connect();

  const roundTrip = (): Promise<boolean> => {
    const current = listening;
    if (current === null) return Promise.resolve(false);
    return current.query("SELECT 1").then(
      () => listening === current,
      () => false,
    );
  };
  const sync = (): Promise<boolean> => {
    if (inFlight === null) {
      inFlight = roundTrip().finally(() => {
        inFlight = null;
      });
      return inFlight;
    }
    // One in flight may have been sent before this call: wait for the next, shared by every call until it starts.
    if (queued === null) {
      queued = inFlight.then(() => {
        queued = null;
        return sync();
      });
    }
    return queued;
  };

  return {
    sync,
    close: async () => {
      closed = true;
      listening = null;
      if (timer !== null) clearTimeout(timer);
      const current = client;
      client = null;
      if (current !== null) {
        current.removeAllListeners("notification");
        await current.end().catch(() => {});
      }
    },
  };
}
