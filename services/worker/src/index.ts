export type { WorkerConfig } from "./config";
export { loadWorkerConfig } from "./config";
export type { ReconcileReport, RunningWorker, WorkerOptions } from "./worker";
export { startWorker } from "./worker";
