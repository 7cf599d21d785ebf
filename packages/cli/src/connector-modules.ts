/** The CLI's connector modules: `CONNECTOR_MODULES` in its environment, loaded as the API and the worker load theirs. */
import { CliFailure } from "./output";

/**
 * The connectors of the operator's own named by `CONNECTOR_MODULES` in the
 * CLI's environment, as the API and the worker load them, so that `validate`
 * knows their types and checks their settings.
 *
 * @throws CliFailure naming the module, the field and the fix
 */
export async function loadLocalConnectorModules(): Promise<void> {
  const { ConnectorModuleError, loadConnectorModules, parseConnectorModules } = await import(
    "@outcome-runtime/connectors"
  );
  try {
    await loadConnectorModules(parseConnectorModules(process.env.CONNECTOR_MODULES));
  } catch (error) {
    if (
      error instanceof ConnectorModuleError ||
      (error instanceof Error && error.message.startsWith("CONNECTOR_MODULES:"))
    ) {
      throw new CliFailure(error.message);
    }
    throw error;
  }
}
