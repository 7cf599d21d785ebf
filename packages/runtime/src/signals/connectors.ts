/**
 * Connectors for the use cases: one live connector per workspace and
 * configuration (a `postgres` connector keeps its pool between polls),
 * created on first use with the credentials its settings name, resolved for
 * that workspace (`source-access.ts`). Resolved credentials are kept for
 * {@link CREDENTIALS_TTL_MS}, so a poll does not read and open a secret each
 * time; a rotated secret is used from then on, with a new connector (the old
 * one is closed).
 */
import { createHash } from "node:crypto";
import {
  type ConnectorContext,
  connectorCredentials,
  createConnector,
  type SignalConnector,
} from "@outcome-runtime/connectors";
import { type DbOrTrx, databaseIdentity } from "@outcome-runtime/db";
import { resolveCredentials, type SourceAccess, sourceWorkspace } from "./source-access";

/** How long resolved credentials are reused before they are read again, ms. */
const CREDENTIALS_TTL_MS = 30_000;

export interface ConnectorProvider {
  /**
   * The connector for a config (as stored in the normalised outcome spec), for a workspace.
   *
   * @throws ConnectorError `invalid_config` when the config is unusable or a credential is missing;
   *   `source_refused` when the workspace may not use a credential it names
   */
  get(
    workspaceId: string,
    config: { type: string } & Record<string, unknown>,
    metricKind: "proportion" | "mean" | "ratio",
  ): Promise<SignalConnector>;
  /** Close every connector made so far. */
  close(): Promise<void>;
}

export interface ConnectorProviderOptions {
  /** The runtime's database: workspace secrets are read from it, and it is never a signal source. */
  readonly db: DbOrTrx;
  /** What the operator allows sources to use (`sourceAccessFromEnv(process.env)`). */
  readonly access: SourceAccess;
  /** The longest one source call may take, ms (`POLL_TIMEOUT_MS`); caps each connector's own timeout. */
  readonly maxTimeoutMs?: number;
  /** How long resolved credentials are reused, ms (default {@link CREDENTIALS_TTL_MS}). */
  readonly credentialsTtlMs?: number;
  /** Makes a connector; tests pass a synthetic one. Defaults to `createConnector`. */
  readonly create?: (config: { type: string } & Record<string, unknown>, context: ConnectorContext) => SignalConnector;
}

/**
 * A provider that caches connectors by workspace, configuration and metric kind.
 */
export function connectorProvider(options: ConnectorProviderOptions): ConnectorProvider {
  const cache = new Map<string, { credentials: string; connector: SignalConnector }>();
  const resolved = new Map<string, { at: number; values: Promise<Record<string, string>> }>();
  const slugs = new Map<string, Promise<{ id: string; slug: string }>>();
  const create = options.create ?? createConnector;
  const runtimeDatabase = () => databaseIdentity(options.db);
  const workspaceOf = (workspaceId: string) => {
    let found = slugs.get(workspaceId);
    if (found === undefined) {
      found = sourceWorkspace(options.db, workspaceId);
      found.catch(() => slugs.delete(workspaceId));
      slugs.set(workspaceId, found);
    }
    return found;
  };
  return {
    async get(workspaceId, config, metricKind) {
      const requirements = connectorCredentials(config);
      let credentials: Record<string, string> = {};
      if (requirements.length > 0) {
        const refs = `${workspaceId}:${JSON.stringify(requirements)}`;
        let entry = resolved.get(refs);
        if (entry === undefined || Date.now() - entry.at >= (options.credentialsTtlMs ?? CREDENTIALS_TTL_MS)) {
          const values = workspaceOf(workspaceId).then((workspace) =>
            resolveCredentials(options.db, options.access, workspace, requirements, "worker"),
          );
          const fresh = { at: Date.now(), values };
          resolved.set(refs, fresh);
          // A failure is not kept: the next poll tries again (a secret just created, a variable just set).
          values.catch(() => {
            if (resolved.get(refs) === fresh) resolved.delete(refs);
          });
          entry = fresh;
        }
        credentials = await entry.values;
      }
      const key = `${workspaceId}:${metricKind}:${JSON.stringify(config)}`;
      const fingerprint = createHash("sha256").update(JSON.stringify(credentials)).digest("hex");
      const cached = cache.get(key);
      if (cached !== undefined && cached.credentials === fingerprint) return cached.connector;
      const connector = create(config, {
        metricKind,
        credentials,
        runtimeDatabase,
        allowedApiUrls: options.access.allowedApiUrls,
        ...(options.maxTimeoutMs === undefined ? {} : { maxTimeoutMs: options.maxTimeoutMs }),
        ...(options.access.csvDir === undefined ? {} : { baseDir: options.access.csvDir }),
      });
      cache.set(key, { credentials: fingerprint, connector });
      if (cached !== undefined) await cached.connector.close().catch(() => {});
      return connector;
    },
    async close() {
      const all = [...cache.values()];
      cache.clear();
      await Promise.allSettled(all.map((c) => c.connector.close()));
    },
  };
}
