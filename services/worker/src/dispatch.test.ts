// biome-ignore lint/style/noRestrictedImports: the dispatcher fails bad jobs with BullMQ's UnrecoverableError, which the test checks
import { UnrecoverableError } from "bullmq";
import { describe, expect, it } from "vitest";
import { dispatcher, type JobRun, type QueueProcessor } from "./dispatch";

const ID = "0b9a4b0e-4d8c-4d59-9a1e-0c5f2b3a7d61";

/** The fields of a BullMQ Job the dispatcher reads (Job's own shape: name, data, attemptsMade, opts.attempts). */
function jobOf(name: string, data: unknown, attemptsMade = 0, attempts = 8) {
  return { id: "job-1", name, data, attemptsMade, opts: { attempts } } as unknown as Parameters<
    ReturnType<typeof dispatcher>
  >[0];
}

function controlProcessor(calls: { payload: unknown; run: JobRun }[]): QueueProcessor<"control"> {
  return {
    reconcile: async (payload, run) => {
      calls.push({ payload, run });
      return "reconciled";
    },
    applyFlagRollout: async (payload, run) => {
      calls.push({ payload, run });
      return "applied";
    },
    applySignalRetention: async (payload, run) => {
      calls.push({ payload, run });
      return [];
    },
    deliverWebhook: async (payload, run) => {
      calls.push({ payload, run });
      return "delivered";
    },
  };
}

describe("the dispatcher", () => {
  it("hands a job of its queue to its processor with the typed payload and whether this is the last attempt", async () => {
    const calls: { payload: unknown; run: JobRun }[] = [];
    const run = dispatcher("control", controlProcessor(calls));
    expect(await run(jobOf("deliver-webhook", { deliveryId: ID }, 0))).toBe("delivered");
    expect(await run(jobOf("deliver-webhook", { deliveryId: ID }, 7))).toBe("delivered");
    expect(calls).toEqual([
      { payload: { deliveryId: ID }, run: { id: "job-1", attempt: 1, final: false } },
      { payload: { deliveryId: ID }, run: { id: "job-1", attempt: 8, final: true } },
    ]);
  });

  it("fails a job it cannot run at once, without retries: unknown, of another queue, or with bad data", async () => {
    const calls: { payload: unknown; run: JobRun }[] = [];
    const run = dispatcher("control", controlProcessor(calls));
    await expect(run(jobOf("no-such-job", {}))).rejects.toBeInstanceOf(UnrecoverableError);
    await expect(run(jobOf("poll-experiment", { experimentId: ID }))).rejects.toThrow(
      "unknown job poll-experiment on queue control",
    );
    await expect(run(jobOf("deliver-webhook", { deliveryId: 7 }))).rejects.toThrow(/deliveryId is not an id/);
    await expect(run(jobOf("deliver-webhook", { deliveryId: 7 }))).rejects.toBeInstanceOf(UnrecoverableError);
    expect(calls).toEqual([]);
  });
});
