import type { TestProject } from "vitest/node";
import { prepareTemplate, TEMPLATE_KEY } from "./postgres";

/**
 * vitest global setup of the integration project: migrate a template database
 * of this run's own, give its name to the test files (`inject`), and drop it
 * when the run ends.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const template = await prepareTemplate();
  project.provide(TEMPLATE_KEY, template.name);
  return () => template.drop();
}
