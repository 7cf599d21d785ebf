export type { WorkerConfig } from "./config";
export { loadWorkerConfig } from "./config";
export type { DispatchReport, ReconcileReport, RunningWorker, WorkerOptions } from "./worker";
export { startWorker } from "./worker";
