export { analysisFixture, proportionArm } from "./analysis";
export { codeOf, rejectionOf } from "./errors";
export type { ConflictSqlstate } from "./faults";
export { refuseWrites, terminateConnections, unreachableDatabaseUrl } from "./faults";
export type { OidcAccount, OidcClientConfig, TestOidcProvider } from "./oidc-provider";
export { signInAtOidcProvider, startOidcProvider } from "./oidc-provider";
export { exampleOutcome, outcomeVariant } from "./outcome-files";
export type { SignalStorage, SourceDatabase, TestDatabase } from "./postgres";
export {
  createEmptyDatabase,
  createSourceDatabase,
  createTestDatabase,
  defaultSignalStorage,
  prepareTemplate,
  serverUrl,
  signalStorages,
  timescaleUsable,
} from "./postgres";
export { READER_ROLE, readerOf, readerUrl } from "./read-only-role";
export type { Seeded } from "./seed";
export { seedWorkspace } from "./seed";
export type { KeyScanner } from "./waiting";
export { deleteRedisKeys, freePort, sleep, waitFor } from "./waiting";
