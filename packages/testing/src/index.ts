export { codeOf } from "./errors";
export { exampleOutcome, outcomeVariant } from "./outcome-files";
export type { SourceDatabase, TestDatabase } from "./postgres";
export { createEmptyDatabase, createSourceDatabase, createTestDatabase, prepareTemplate, serverUrl } from "./postgres";
export { READER_ROLE, readerOf, readerUrl } from "./read-only-role";
export type { Seeded } from "./seed";
export { seedWorkspace } from "./seed";
export type { KeyScanner } from "./waiting";
export { deleteRedisKeys, freePort, sleep, waitFor } from "./waiting";
