import { describe, expect, it } from "vitest";
import {
  analyseJobId,
  CONTROL_QUEUE,
  InvalidJobPayloadError,
  JOB,
  JOBS,
  type JobKey,
  jobKeyOf,
  jobOptions,
  KEEP_COMPLETED,
  KEEP_FAILED,
  NOTIFY_QUEUE,
  parseJobPayload,
  pollNowJobId,
  SIGNALS_QUEUE,
} from "./jobs";

const ID = "0b9a4b0e-4d8c-4d59-9a1e-0c5f2b3a7d61";

describe("the job catalogue", () => {
  const keys = Object.keys(JOBS) as JobKey[];

  it("names every job once, on one of the three queues, with retries that add up", () => {
    const names = keys.map((k) => JOBS[k].name);
    expect(new Set(names).size).toBe(names.length);
    for (const key of keys) {
      const spec = JOBS[key];
      expect([SIGNALS_QUEUE, CONTROL_QUEUE, NOTIFY_QUEUE]).toContain(spec.queue);
      expect(jobKeyOf(spec.name)).toBe(key);
      expect(JOB[key]).toBe(spec.name);
      expect(spec.attempts).toBeGreaterThanOrEqual(1);
      // A job retried waits between attempts; a one-shot job has nothing to wait for.
      expect(spec.backoff === null).toBe(spec.attempts === 1);
      // Every job is either one-off work named by its id, or repeated by a scheduler, or both.
      expect(spec.jobId !== null || spec.schedulerId !== null).toBe(true);
    }
    expect(jobKeyOf("no-such-job")).toBeNull();
  });

  it("still runs a job queued under an earlier release's name", () => {
    expect(jobKeyOf("analyze-experiment")).toBe("analyseExperiment");
  });

  it("gives a poll the same retries whether a scheduler or a person asked for it", () => {
    const options = jobOptions("pollExperiment");
    expect(options).toEqual({
      attempts: 5,
      backoff: { type: "exponential", delay: 2000 },
      removeOnComplete: KEEP_COMPLETED,
      removeOnFail: KEEP_FAILED,
    });
    const requested = new Date("2026-12-10T09:00:00.900Z");
    expect(jobOptions("pollExperiment", { jobId: pollNowJobId(ID, requested) })).toEqual({
      ...options,
      jobId: `poll-now-${ID}-${Date.parse("2026-12-10T09:00:00Z") / 1000}`,
    });
  });

  it("adds a delay only when there is one, and names the work in the job id", () => {
    expect(jobOptions("gateReminder", { jobId: "gate-reminder-x", delay: 0 })).not.toHaveProperty("delay");
    expect(jobOptions("gateReminder", { delay: 1500 })).toMatchObject({ delay: 1500, attempts: 5 });
    expect(jobOptions("reconcile")).toEqual({
      attempts: 1,
      removeOnComplete: KEEP_COMPLETED,
      removeOnFail: KEEP_FAILED,
    });
    expect(analyseJobId(ID, 1_700_000_000_000)).toBe(`analyse-${ID}-1700000000000`);
  });

  it("takes a payload of ids and refuses anything else, naming the field", () => {
    expect(parseJobPayload("sendGateEmail", { notificationId: ID, extra: 1 })).toEqual({ notificationId: ID });
    expect(parseJobPayload("reconcile", {})).toEqual({});
    for (const bad of [null, "x", {}, { notificationId: 42 }, { notificationId: "not-an-id" }]) {
      expect(() => parseJobPayload("sendGateEmail", bad)).toThrow(InvalidJobPayloadError);
    }
    expect(() => parseJobPayload("sendGateEmail", { notificationId: 42 })).toThrow(
      "job send-gate-email: notificationId is not an id (42)",
    );
  });
});
