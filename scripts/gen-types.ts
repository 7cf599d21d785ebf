/**
 * Writes the generated type files, so no shape is written twice:
 *
 * - `packages/spec/src/outcome.types.ts` from `schemas/outcome.schema.json`
 *   (the outcome.yaml format; scripts/codegen/outcome-types.ts);
 * - `schemas/openapi.json`, the API's OpenAPI document, from the API's routes,
 *   and `packages/spec/src/api.types.ts` from that document (the REST JSON the
 *   CLI and the dashboard read; scripts/codegen/api-types.ts).
 *
 *   tsx scripts/gen-types.ts           write the files
 *   tsx scripts/gen-types.ts --check   exit 1 if a checked-in file is stale
 */
import { relative, resolve } from "node:path";
import { apiTypes, openApiDocument, openApiJson } from "./codegen/api-types";
import { ROOT, staleFiles, staleMessage, writeGenerated } from "./codegen/generated";
import { outcomeTypes } from "./codegen/outcome-types";

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== "--check");
  if (unknown.length > 0) {
    console.error(`unknown argument ${unknown.join(" ")}\nusage: tsx scripts/gen-types.ts [--check]`);
    process.exit(2);
  }
  const doc = await openApiDocument();
  const generated = [await outcomeTypes(), openApiJson(doc), await apiTypes(doc)];
  const shown = (path: string) => relative(process.cwd(), resolve(ROOT, path));
  if (args.includes("--check")) {
    const stale = staleFiles(generated);
    if (stale.length > 0) {
      console.error(staleMessage(stale.map((s) => ({ ...s, path: shown(s.path) }))));
      process.exit(1);
    }
    for (const file of generated) console.log(`${shown(file.path)} is up to date`);
    return;
  }
  writeGenerated(generated);
  for (const file of generated) console.log(`wrote ${shown(file.path)}`);
}

await main();
