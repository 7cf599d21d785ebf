import { prepareTemplate } from "./postgres";

/** vitest global setup: migrate the template database once per run. */
export default async function setup(): Promise<void> {
  await prepareTemplate();
}
