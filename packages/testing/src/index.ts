export { codeOf } from "./errors";
export { exampleOutcome, outcomeVariant } from "./outcome-files";
export type { TestDatabase } from "./postgres";
export { createEmptyDatabase, createTestDatabase, prepareTemplate, serverUrl } from "./postgres";
export type { Seeded } from "./seed";
export { seedWorkspace } from "./seed";
export type { KeyScanner } from "./waiting";
export { deleteRedisKeys, freePort, sleep, waitFor } from "./waiting";
