/** A poll's error as the experiment, the source health and the logs show it. */
import { ConnectorError } from "@outcome-runtime/connectors";
import { DomainError } from "@outcome-runtime/core";
import { databaseError } from "@outcome-runtime/db";

/**
 * Make a poll's error readable on the experiment: code and message, and
 * whether a retry may succeed. Errors of the runtime's own database carry the
 * codes REST and MCP report (`conflict`, `service_unavailable`: retryable;
 * `validation_failed`); anything else unknown is `poll_failed`, retryable.
 */
export function describePollError(error: unknown): { code: string; message: string; retryable: boolean } {
  if (error instanceof ConnectorError) return { code: error.code, message: error.message, retryable: error.retryable };
  if (error instanceof DomainError) return { code: error.code, message: error.message, retryable: false };
  const fromDatabase = databaseError(error);
  if (fromDatabase !== null) {
    return { code: fromDatabase.code, message: fromDatabase.message, retryable: fromDatabase.retryable };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: "poll_failed", message, retryable: true };
}
