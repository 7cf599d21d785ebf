import type { TestProject } from "vitest/node";
import { prepareTemplates, TEMPLATE_KEY } from "./postgres";

/**
 * vitest global setup of the integration project: migrate the template
 * databases of this run's own (plain tables, and a TimescaleDB hypertable where
 * the server has it), give their names to the test files (`inject`), and drop
 * them when the run ends.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const templates = await prepareTemplates();
  project.provide(TEMPLATE_KEY, templates.names);
  return () => templates.drop();
}
