/**
 * Connectors for the use cases: one live connector per distinct configuration
 * (a `postgres` connector keeps its pool between polls), created on first use.
 */
import { type ConnectorContext, createConnector, type SignalConnector } from "@outcome-runtime/connectors";

export interface ConnectorProvider {
  /** The connector for a config (as stored in the normalised outcome spec). */
  get(config: { type: string } & Record<string, unknown>, metricKind: "proportion" | "mean"): SignalConnector;
  /** Close every connector made so far. */
  close(): Promise<void>;
}

export interface ConnectorProviderOptions {
  /** Environment read for connection strings and secrets (the composition root passes `process.env`). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Database used by a `postgres` connector without `database_url_env`. */
  readonly defaultDatabaseUrl?: string;
  /** Directory relative `csv` paths are resolved against. */
  readonly baseDir?: string;
  /** Makes a connector; tests pass a synthetic one. Defaults to `createConnector`. */
  readonly create?: (config: { type: string } & Record<string, unknown>, context: ConnectorContext) => SignalConnector;
}

/**
 * A provider that caches connectors by configuration and metric kind.
 *
 * @throws ConnectorError `invalid_config` from `get` when a config is unusable.
 */
export function connectorProvider(options: ConnectorProviderOptions): ConnectorProvider {
  const cache = new Map<string, SignalConnector>();
  const create = options.create ?? createConnector;
  return {
    get(config, metricKind) {
      const key = `${metricKind}:${JSON.stringify(config)}`;
      let connector = cache.get(key);
      if (connector === undefined) {
        connector = create(config, {
          env: options.env,
          metricKind,
          ...(options.defaultDatabaseUrl === undefined ? {} : { defaultDatabaseUrl: options.defaultDatabaseUrl }),
          ...(options.baseDir === undefined ? {} : { baseDir: options.baseDir }),
        });
        cache.set(key, connector);
      }
      return connector;
    },
    async close() {
      const all = [...cache.values()];
      cache.clear();
      await Promise.allSettled(all.map((c) => c.close()));
    },
  };
}
