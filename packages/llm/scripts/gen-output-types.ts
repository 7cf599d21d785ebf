/**
 * Generates `packages/llm/src/output.types.ts` from `schemas/llm/*.output.schema.json`,
 * so the LLM output types are never written twice.
 *
 *   tsx packages/llm/scripts/gen-output-types.ts           write the file
 *   tsx packages/llm/scripts/gen-output-types.ts --check   exit 1 if the checked-in file is stale
 */
import { readFileSync, writeFileSync } from "node:fs";
import { outputTypesSource, TYPES_PATH } from "../src/output-types.generator";

const source = await outputTypesSource();
if (process.argv.includes("--check")) {
  if (readFileSync(TYPES_PATH, "utf8") !== source) {
    process.stderr.write(`${TYPES_PATH} is stale: run tsx packages/llm/scripts/gen-output-types.ts\n`);
    process.exit(1);
  }
} else {
  writeFileSync(TYPES_PATH, source);
}
