/**
 * The connector types installed packages add (`CONNECTOR_MODULES`), as
 * `loadConnectorModules` registered them, and the guard every connector they
 * create runs behind. `createConnector`, `connectorCredentials` and
 * `readsInBatches` look types up here after the built-in ones.
 *
 * A registered connector is held to the same contract as a built-in one,
 * whatever its package does: its context's `fetch` is the SSRF-guarded one
 * unless the runtime gave another, the rows it returns are checked again with
 * `checkArmAggregates` and `checkSeries`, and anything it throws reaches the
 * runtime as a `ConnectorError` naming the module.
 */
import { guardedFetch, OutboundBlockedError } from "@outcome-runtime/netguard";
import { checkArmAggregates, checkSeries, type RawArmRow } from "./boundary-checks";
import type {
  ArmAggregate,
  BatchAggregates,
  BatchWindow,
  ConnectorConfig,
  ConnectorContext,
  ExperimentWindow,
  SignalConnector,
} from "./connector";
import { ConnectorError } from "./connector-error";

/**
 * What a connector package default-exports: one connector type. See
 * docs/connectors.md, "Connectors of your own".
 *
 * @example
 * const connector: ConnectorModule = {
 *   type: "acme-metrics",
 *   description: "Arm aggregates from the metrics service",
 *   credentials: [{ credential: "token", what: "the metrics service's API token" }],
 *   create: (config, context) => createAcmeConnector(config, context),
 * };
 * export default connector;
 */
export interface ConnectorModule {
  /**
   * The connector type outcome.yaml names (`connector: { type: acme-metrics }`): a lowercase letter, then
   * lowercase letters, digits, `-` or `_`, at most 40 characters; never a built-in type.
   */
  readonly type: string;
  /** One line for `/healthz` and logs. */
  readonly description?: string;
  /**
   * The credentials the connector needs, each named in outcome.yaml by `<credential>_secret` (a workspace secret)
   * or `<credential>_env` (an `OUTCOME_RUNTIME_SOURCE_*` variable), resolved by the runtime as for the built-in
   * connectors and handed over in `context.credentials[credential]`. `what` says what it is, for messages.
   */
  readonly credentials?: readonly { readonly credential: string; readonly what: string }[];
  /**
   * Creates the connector from its settings (everything under `connector:` but `type`). Checks the settings
   * now and throws `ConnectorError` `invalid_config` naming the field, the value and the fix; connects to
   * nothing and reads nothing (it is also called to check an outcome, with placeholder credentials).
   */
  create(config: ConnectorConfig, context: ConnectorContext): SignalConnector;
  /**
   * Whether these settings read many experiments in one request: the connector then has
   * `fetchBatchAggregates`, and the worker polls the experiments sharing the settings together. Default: false.
   */
  readsInBatches?(config: ConnectorConfig): boolean;
}

/** A connector type a package added: the module it came from, as `CONNECTOR_MODULES` names it. */
export interface RegisteredConnectorModule {
  /** The module's name in `CONNECTOR_MODULES` (a package name or an absolute path). */
  readonly module: string;
  readonly type: string;
  readonly description: string | null;
}

interface Entry {
  readonly module: string;
  readonly connector: ConnectorModule;
}

const registry = new Map<string, Entry>();

/** Registers checked modules (`loadConnectorModules` checks them); a module registered again is left as is. */
export function registerCheckedModules(entries: readonly Entry[]): void {
  for (const entry of entries) registry.set(entry.connector.type, entry);
}

/** The module registered for `type`, if any. */
export function registeredEntry(type: string): Entry | undefined {
  return registry.get(type);
}

/** The credentials a registered type needs, or undefined when `type` is not registered. */
export function registeredCredentials(type: string): readonly { credential: string; what: string }[] | undefined {
  const entry = registry.get(type);
  return entry === undefined ? undefined : (entry.connector.credentials ?? []);
}

/**
 * The connector types installed packages added, in the order they were registered.
 *
 * @returns one entry per type: its module, type and description
 */
export function registeredConnectorModules(): RegisteredConnectorModule[] {
  return [...registry.values()].map(({ module, connector }) => ({
    module,
    type: connector.type,
    description: connector.description ?? null,
  }));
}

/** Whether a registered type's settings read many experiments per request (false when it says nothing). */
export function registeredReadsInBatches(entry: Entry, config: ConnectorConfig): boolean {
  return entry.connector.readsInBatches?.(config) === true;
}

/**
 * Creates a registered type's connector behind the guard (see the file's comment).
 *
 * @throws ConnectorError what `create` threw when it is one; else `invalid_config` naming the module
 */
export function createRegisteredConnector(
  entry: Entry,
  config: ConnectorConfig,
  context: ConnectorContext,
): SignalConnector {
  const { module, connector: definition } = entry;
  const type = definition.type;
  const fix = `fix the module or report it to its authors; remove it from CONNECTOR_MODULES to stop using it`;
  let created: unknown;
  try {
    created = definition.create(config, {
      ...context,
      fetch: context.fetch ?? guardedFetch({ policy: context.outboundPolicy }),
    });
  } catch (error) {
    if (error instanceof ConnectorError) throw error;
    throw new ConnectorError(
      "invalid_config",
      `${type} connector (module ${module}): create() failed: ${messageOf(error)}; ${fix}`,
      { details: { connector: type, module, problem: `create() failed: ${messageOf(error)}`, fix }, cause: error },
    );
  }
  const missing = missingMethods(created, registeredReadsInBatches(entry, config));
  if (missing !== null) {
    const problem = `create() returned ${missing}`;
    throw new ConnectorError("invalid_config", `${type} connector (module ${module}): ${problem}; ${fix}`, {
      details: { connector: type, module, problem, fix },
    });
  }
  return new GuardedConnector(type, module, created as SignalConnector, context.metricKind);
}

/** What a created connector lacks (`an object without fetchArmAggregates()`), or null when it is complete. */
function missingMethods(created: unknown, batched: boolean): string | null {
  if (created === null || typeof created !== "object") return `${typeof created}, not a connector object`;
  const methods = ["describe", "fetchArmAggregates", "fetchOutcomeSeries", "close"];
  if (batched) methods.push("fetchBatchAggregates");
  const absent = methods.filter((m) => typeof (created as Record<string, unknown>)[m] !== "function");
  return absent.length === 0 ? null : `an object without ${absent.map((m) => `${m}()`).join(", ")}`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The rows of a checked aggregate, as a source would return them, to be checked again. */
function rawRows(rows: readonly ArmAggregate[]): RawArmRow[] {
  return rows.map((row, i) => ({
    arm: row.arm,
    units: row.units,
    sum: row.sum,
    sum_sq: row.sum_sq,
    ts: row.ts ?? undefined,
    ...(row.covariate === undefined
      ? {}
      : { cov_sum: row.covariate.sum, cov_sum_sq: row.covariate.sumSq, cov_sum_product: row.covariate.sumProduct }),
    ...(row.denominator === undefined
      ? {}
      : {
          den_sum: row.denominator.sum,
          den_sum_sq: row.denominator.sumSq,
          num_den_sum: row.denominator.sumProduct,
        }),
    location: `row ${i + 1}`,
  }));
}

/** A registered connector held to the contract: its answers checked, its errors `ConnectorError`s naming the module. */
class GuardedConnector implements SignalConnector {
  readonly fetchBatchAggregates?: (window: BatchWindow, signal?: AbortSignal) => Promise<BatchAggregates>;
  readonly estimateCost?: SignalConnector["estimateCost"];
  readonly check?: (signal?: AbortSignal) => Promise<void>;

  constructor(
    readonly type: string,
    private readonly module: string,
    private readonly inner: SignalConnector,
    private readonly metricKind: "proportion" | "mean" | "ratio",
  ) {
    const batch = inner.fetchBatchAggregates;
    if (typeof batch === "function") {
      this.fetchBatchAggregates = (window, signal) =>
        this.guard(async () => {
          const answer = await batch.call(inner, window, signal);
          if (!(answer instanceof Map)) {
            throw this.bad(`fetchBatchAggregates() returned ${typeof answer}, not a Map of experiment key → rows`);
          }
          const checked: BatchAggregates = new Map();
          for (const experiment of window.experiments) {
            const rows = answer.get(experiment.experimentKey);
            if (rows instanceof ConnectorError) checked.set(experiment.experimentKey, rows);
            else if (rows === undefined) checked.set(experiment.experimentKey, []);
            else {
              try {
                checked.set(experiment.experimentKey, this.checkRows(rows, { ...experiment, to: window.to }));
              } catch (error) {
                if (!(error instanceof ConnectorError)) throw error;
                checked.set(experiment.experimentKey, error);
              }
            }
          }
          return checked;
        });
    }
    const estimate = inner.estimateCost;
    if (typeof estimate === "function") {
      this.estimateCost = (window, signal) => this.guard(() => estimate.call(inner, window, signal));
    }
    const check = inner.check;
    if (typeof check === "function") this.check = (signal) => this.guard(() => check.call(inner, signal));
  }

  describe(): string {
    try {
      return String(this.inner.describe());
    } catch {
      return `${this.type} connector (module ${this.module})`;
    }
  }

  fetchArmAggregates(window: ExperimentWindow, signal?: AbortSignal): Promise<ArmAggregate[]> {
    return this.guard(async () => this.checkRows(await this.inner.fetchArmAggregates(window, signal), window));
  }

  fetchOutcomeSeries(window: { from: Date; to: Date }, signal?: AbortSignal) {
    return this.guard(async () => {
      const points = await this.inner.fetchOutcomeSeries(window, signal);
      if (!Array.isArray(points)) throw this.bad(`fetchOutcomeSeries() returned ${typeof points}, not an array`);
      return checkSeries(points, window, `${this.type} connector`);
    });
  }

  close(): Promise<void> {
    return this.guard(async () => this.inner.close());
  }

  private checkRows(rows: unknown, window: ExperimentWindow): ArmAggregate[] {
    if (!Array.isArray(rows)) throw this.bad(`returned ${typeof rows}, not an array of arm aggregates`);
    return checkArmAggregates(rawRows(rows as ArmAggregate[]), window, this.metricKind, `${this.type} connector`);
  }

  private bad(problem: string): ConnectorError {
    return new ConnectorError("bad_response", `${this.type} connector (module ${this.module}): ${problem}`, {
      details: { connector: this.type, module: this.module, problem },
    });
  }

  /** Runs `call`; an error that is not a `ConnectorError` becomes one (`source_refused` for a blocked address). */
  private async guard<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof ConnectorError) throw error;
      if (error instanceof OutboundBlockedError) {
        throw new ConnectorError(
          "source_refused",
          `${this.type} connector: ${error.message}; ask the operator to allow the host (OUTBOUND_ALLOW) if it is yours`,
          { details: { connector: this.type, module: this.module, url: error.url }, cause: error },
        );
      }
      throw new ConnectorError("unavailable", `${this.type} connector (module ${this.module}): ${messageOf(error)}`, {
        details: { connector: this.type, module: this.module },
        cause: error,
      });
    }
  }
}
