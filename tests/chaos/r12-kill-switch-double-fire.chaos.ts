/**
 * R12: the kill-switch fired twice (and more). Two worker processes; a harmful
 * snapshot; then analysis jobs of that snapshot added all at once: the same
 * job id many times, and many different job ids (as a second enqueuer with
 * another naming would), so both workers run the analysis concurrently.
 * Webhooks go to a fake feature-flag provider (a local HTTP server standing
 * for the SaaS that turns the treatment off on `experiment.paused`): its
 * first `experiment.paused` call hangs past the worker's webhook timeout
 * (the provider applies the effect, the answer never arrives), and it answers
 * at once after that. Gate emails go to a real SMTP server in this process.
 *
 * Pass: the experiment paused once (one `experiment.paused` audit row), one
 * analysis_review gate and its email once per recipient, and the provider
 * applied one effect per idempotency key (the event id header) although it
 * received ≥ 2 deliveries of the pause event.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { audit, experiments as experimentRows, gateMail, gates, signals } from "@outcome-runtime/db";
import { startMailCatcher } from "@outcome-runtime/notify/test-support";
import {
  analyseJobId,
  connectorProvider,
  EVENT_HEADER,
  JOB,
  KEEP_COMPLETED,
  KEEP_FAILED,
  pollExperiment,
  primaryPolledUntil,
  SIGNALS_QUEUE,
} from "@outcome-runtime/runtime";
import { sleep, waitFor } from "@outcome-runtime/testing";
// biome-ignore lint/style/noRestrictedImports: the scenario adds duplicate analysis jobs as a double-firing enqueuer would
import { Queue, QueueEvents } from "bullmq";
import { afterAll, expect, it } from "vitest";
import { startWorkerProcess, stopProcess, workerBooted } from "../support/processes";
import {
  activeOutcome,
  BATCHED_SOURCE_QUERY,
  type Cleanups,
  createWorld,
  insertSource,
  launchExperiments,
  runCleanups,
  stateOf,
} from "../support/world";
import { report, scaled } from "./report";

const cleanups: Cleanups = [];
afterAll(() => runCleanups(cleanups));

const SAME_ID = scaled(200, 50);
const OTHER_IDS = scaled(200, 50);
const SECRET = "chaos-r12-webhook-secret-0123456789";
/** How long the provider sits on its first pause call: longer than the worker's 10 s webhook timeout. */
const HANG_MS = 12_000;

interface FlagProvider {
  readonly url: string;
  /** Every delivery: event id and type. */
  readonly deliveries: { id: string; type: string }[];
  /** Effects applied (treatment turned off), per idempotency key. */
  readonly effects: Map<string, number>;
}

/** A feature-flag provider: on `experiment.paused` it turns the treatment off once per idempotency key. */
async function flagProvider(): Promise<FlagProvider> {
  const deliveries: { id: string; type: string }[] = [];
  const effects = new Map<string, number>();
  let hung = false;
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const id = String(request.headers[EVENT_HEADER] ?? "");
      const type = String((JSON.parse(Buffer.concat(chunks).toString("utf8")) as { type?: string }).type);
      deliveries.push({ id, type });
      if (type === "experiment.paused" && !effects.has(id)) effects.set(id, 1);
      else if (type === "experiment.paused") {
        // Idempotent: a key already applied is acknowledged without applying it again.
      }
      if (type === "experiment.paused" && !hung) {
        // Applied, but the answer comes too late: the sender times out and retries.
        hung = true;
        setTimeout(() => {
          if (!response.writableEnded) response.writeHead(200).end('{"ok":true}');
        }, HANG_MS).unref();
        return;
      }
      response.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/flags/webhook`, deliveries, effects };
}

/**
 * Two worker processes sending webhooks to a fresh flag provider and gate emails to a mail catcher in this
 * process, booted; `output` is both workers' logs, for diagnostics.
 */
async function twoWorkers(world: Awaited<ReturnType<typeof createWorld>>) {
  const provider = await flagProvider();
  const smtp = await startMailCatcher();
  cleanups.push(() => smtp.close());
  const env = {
    OUTCOME_RUNTIME_WEBHOOK_URL: provider.url,
    OUTCOME_RUNTIME_WEBHOOK_SECRET: SECRET,
    SMTP_URL: smtp.url,
    MAIL_FROM: "Outcome Runtime <gates@acme.example>",
    OUTCOME_RUNTIME_PUBLIC_URL: "http://127.0.0.1:9",
    OUTBOX_INTERVAL_MS: "200",
    WORKER_CONCURRENCY: "8",
  };
  const workers = [await startWorkerProcess(world, cleanups, env), await startWorkerProcess(world, cleanups, env)];
  await Promise.all(workers.map((w) => workerBooted(w)));
  const output = () => workers.map((w) => w.output()).join("\n---\n");
  return { provider, smtp, workers, output };
}

/**
 * Waits for what a pause sends: a second delivery of its webhook (the provider's first call hangs past the
 * timeout) and the emails of its one analysis review, which it returns.
 */
async function pauseSettled(
  world: Awaited<ReturnType<typeof createWorld>>,
  provider: FlagProvider,
  id: string,
  output: () => string,
) {
  const pauseDeliveries = () => provider.deliveries.filter((d) => d.type === "experiment.paused");
  await waitFor("a second delivery of the pause event", async () => pauseDeliveries().length >= 2, {
    timeoutMs: 60_000,
    intervalMs: 200,
    diagnostics: output,
  });
  const reviews = (
    await gates.listGates(world.t.db, world.seed.workspaceId, { experimentId: id, kind: "analysis_review" })
  ).items;
  expect(reviews).toHaveLength(1);
  const review = reviews[0]!;
  await waitFor(
    "the analysis review's emails",
    async () => {
      const rows = await gateMail.listNotificationsOfGate(world.t.db, review.id);
      return rows.length > 0 && rows.every((n) => n.status === "sent");
    },
    { timeoutMs: 60_000, intervalMs: 200, diagnostics: output },
  );
  return { pauseDeliveries, review };
}

it(`R12: the kill-switch fired by ${SAME_ID} same-id and ${OTHER_IDS} other-id analyses on two workers pauses once`, async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  await activeOutcome(world, "chaos-double", 100, { pollInterval: "1h" });
  const [experiment] = await launchExperiments(world, "chaos-double", ["double"]);
  const id = experiment!.id;

  const { provider, smtp, workers, output } = await twoWorkers(world);
  // The workers' boot polls found an empty source: no analysis of their own.
  await waitFor(
    "the workers' first poll",
    async () => (await experimentRows.findExperimentById(world.t.db, id))?.polling.lastPolledAt != null,
    { timeoutMs: 30_000, diagnostics: output },
  );

  // One harmful snapshot, stored by the poll use case as the worker runs it.
  const ts = new Date();
  await insertSource(world, [
    { key: "double", arm: "control", ts, units: 5000, conversions: 1000 },
    { key: "double", arm: "treatment", ts, units: 5000, conversions: 500 },
  ]);
  const connectors = connectorProvider({ db: world.t.db, access: world.deps.sources });
  cleanups.push(() => connectors.close());
  expect(await pollExperiment({ db: world.t.db, connectors }, id)).toMatchObject({ status: "polled", inserted: 2 });
  const upTo = (await primaryPolledUntil({ db: world.t.db }, id))!;

  const queue = new Queue(SIGNALS_QUEUE, { connection: world.redis, prefix: world.prefix });
  const events = new QueueEvents(SIGNALS_QUEUE, { connection: world.redis.duplicate(), prefix: world.prefix });
  cleanups.push(async () => {
    await events.close();
    await queue.close();
  });
  await events.waitUntilReady();
  const ran = new Map<string, string>();
  events.on("completed", ({ jobId, returnvalue }) => {
    if (jobId.startsWith("analyse-")) ran.set(jobId, String(returnvalue));
  });
  const opts = {
    attempts: 5,
    backoff: { type: "exponential" as const, delay: 1000 },
    removeOnComplete: KEEP_COMPLETED,
    removeOnFail: KEEP_FAILED,
  };
  const otherIds = Array.from({ length: OTHER_IDS }, (_, i) => `analyse-${id}-${upTo}-again-${i}`);
  const fired = Date.now();
  await Promise.all([
    ...Array.from({ length: SAME_ID }, () =>
      queue.add(JOB.analyseExperiment, { experimentId: id }, { ...opts, jobId: analyseJobId(id, upTo) }),
    ),
    ...otherIds.map((jobId) => queue.add(JOB.analyseExperiment, { experimentId: id }, { ...opts, jobId })),
  ]);

  const pausedMs = await waitFor(
    "the experiment to be paused",
    async () => ((await stateOf(world, id)) === "paused" ? Date.now() - fired : undefined),
    { timeoutMs: 30_000, intervalMs: 20, diagnostics: output },
  );
  await waitFor("every analysis job to run", async () => ran.size === 1 + OTHER_IDS, {
    timeoutMs: 60_000,
    intervalMs: 100,
    diagnostics: output,
  });
  // The pause's webhook: the first call hangs past the timeout, the retry is acknowledged.
  const { pauseDeliveries, review } = await pauseSettled(world, provider, id, output);
  // Let a second pause, a second gate, a re-sent email or a late delivery show up before counting.
  await sleep(3000);
  for (const w of workers) expect(await stopProcess(w.proc, 30_000)).toMatchObject({ code: 0 });

  const paused = await audit.listAuditEvents(world.t.db, world.seed.workspaceId, {
    subjectId: id,
    action: "experiment.paused",
  });
  const analyses = await signals.listAnalyses(world.t.db, id);
  const allReviews = (
    await gates.listGates(world.t.db, world.seed.workspaceId, { experimentId: id, kind: "analysis_review" })
  ).items;
  const notifications = await gateMail.listNotificationsOfGate(world.t.db, review.id);
  const mails = smtp.received.filter((m) => (m.mail.text ?? "").includes(review.id));
  const perRecipient = new Map<string, number>();
  for (const m of mails) for (const to of m.to) perRecipient.set(to, (perRecipient.get(to) ?? 0) + 1);
  const pauseEvents = new Set(pauseDeliveries().map((d) => d.id));
  const effectsApplied = [...provider.effects.values()].reduce((a, b) => a + b, 0);
  const emailDuplicates = [...perRecipient.values()].reduce((n, c) => n + Math.max(0, c - 1), 0);

  report({
    id: "R12",
    title: "Kill-switch double fire",
    fault: "duplicate analyses (same and other job ids) on 2 workers; the flag provider's first call times out",
    faults: SAME_ID + OTHER_IDS + 1,
    lost: (paused.length === 0 ? 1 : 0) + (allReviews.length === 0 ? 1 : 0) + (effectsApplied === 0 ? 1 : 0),
    duplicated:
      Math.max(0, paused.length - 1) +
      Math.max(0, allReviews.length - 1) +
      Math.max(0, analyses.length - 1) +
      emailDuplicates +
      Math.max(0, effectsApplied - pauseEvents.size),
    figures: {
      "analysis jobs run": ran.size,
      "analysis rows": analyses.length,
      "experiment.paused rows": paused.length,
      "analysis_review gates": allReviews.length,
      "email recipients": perRecipient.size,
      "emails sent": mails.length,
      "gate notifications": notifications.length,
      "pause deliveries to the provider": pauseDeliveries().length,
      "pause event ids": pauseEvents.size,
      "provider effects applied": effectsApplied,
      "add → paused ms": pausedMs,
    },
    ms: Date.now() - started,
  });
  expect(await stateOf(world, id)).toBe("paused");
  expect(paused).toHaveLength(1);
  expect(analyses).toHaveLength(1);
  expect(analyses[0]!.decision).toMatchObject({ action: "pause", reason: "kill" });
  expect(allReviews).toHaveLength(1);
  expect(notifications.length).toBeGreaterThan(0);
  expect(perRecipient.size).toBe(notifications.length);
  expect([...perRecipient.values()].every((c) => c === 1)).toBe(true);
  expect(pauseEvents.size).toBe(1);
  expect(pauseDeliveries().length).toBeGreaterThanOrEqual(2);
  expect(effectsApplied).toBe(1);
});

const BATCH_JOBS = scaled(60, 20);

it(`R12b: the kill-switch fired by ${BATCH_JOBS} batched poll jobs (same and other ids) on two workers pauses once`, async () => {
  const started = Date.now();
  const world = await createWorld(cleanups);
  const outcomeId = await activeOutcome(world, "chaos-double-b", 100, {
    pollInterval: "1h",
    query: BATCHED_SOURCE_QUERY,
  });
  const [experiment, bystander] = await launchExperiments(world, "chaos-double-b", ["double-b", "bystander-b"]);
  const id = experiment!.id;
  const { provider, smtp, workers, output } = await twoWorkers(world);
  await waitFor(
    "the workers' first batched poll",
    async () => (await experimentRows.findExperimentById(world.t.db, id))?.polling.lastPolledAt != null,
    { timeoutMs: 30_000, diagnostics: output },
  );

  // One harmful snapshot for one experiment, a healthy one for the other; then poll jobs of the outcome
  // added all at once, half under one job id, half under ids of their own, run by both workers.
  const ts = new Date();
  await insertSource(world, [
    { key: "double-b", arm: "control", ts, units: 5000, conversions: 1000 },
    { key: "double-b", arm: "treatment", ts, units: 5000, conversions: 500 },
    { key: "bystander-b", arm: "control", ts, units: 5000, conversions: 1000 },
    { key: "bystander-b", arm: "treatment", ts, units: 5000, conversions: 1000 },
  ]);
  const queue = new Queue(SIGNALS_QUEUE, { connection: world.redis, prefix: world.prefix });
  const events = new QueueEvents(SIGNALS_QUEUE, { connection: world.redis.duplicate(), prefix: world.prefix });
  cleanups.push(async () => {
    await events.close();
    await queue.close();
  });
  await events.waitUntilReady();
  const ran = new Set<string>();
  events.on("completed", ({ jobId }) => {
    if (jobId.startsWith("double-fire-")) ran.add(jobId);
  });
  const opts = {
    attempts: 5,
    backoff: { type: "exponential" as const, delay: 1000 },
    removeOnComplete: KEEP_COMPLETED,
    removeOnFail: KEEP_FAILED,
  };
  const otherIds = Array.from({ length: BATCH_JOBS / 2 }, (_, i) => `double-fire-${i}`);
  const fired = Date.now();
  await Promise.all([
    ...Array.from({ length: BATCH_JOBS / 2 }, () =>
      queue.add(JOB.pollExperimentBatch, { outcomeId }, { ...opts, jobId: "double-fire-same" }),
    ),
    ...otherIds.map((jobId) => queue.add(JOB.pollExperimentBatch, { outcomeId }, { ...opts, jobId })),
  ]);
  const pausedMs = await waitFor(
    "the experiment to be paused",
    async () => ((await stateOf(world, id)) === "paused" ? Date.now() - fired : undefined),
    { timeoutMs: 30_000, intervalMs: 20, diagnostics: output },
  );
  await waitFor("every poll job to run", async () => ran.size === 1 + otherIds.length, {
    timeoutMs: 60_000,
    intervalMs: 100,
    diagnostics: output,
  });
  const { pauseDeliveries, review } = await pauseSettled(world, provider, id, output);
  await sleep(3000);
  for (const w of workers) expect(await stopProcess(w.proc, 30_000)).toMatchObject({ code: 0 });

  const paused = await audit.listAuditEvents(world.t.db, world.seed.workspaceId, {
    subjectId: id,
    action: "experiment.paused",
  });
  const analyses = await signals.listAnalyses(world.t.db, id);
  const bystanderAnalyses = await signals.listAnalyses(world.t.db, bystander!.id);
  const allReviews = (
    await gates.listGates(world.t.db, world.seed.workspaceId, { experimentId: id, kind: "analysis_review" })
  ).items;
  const notifications = await gateMail.listNotificationsOfGate(world.t.db, review.id);
  const mails = smtp.received.filter((m) => (m.mail.text ?? "").includes(review.id));
  const perRecipient = new Map<string, number>();
  for (const m of mails) for (const to of m.to) perRecipient.set(to, (perRecipient.get(to) ?? 0) + 1);
  const pauseEvents = new Set(pauseDeliveries().map((d) => d.id));
  const effectsApplied = [...provider.effects.values()].reduce((a, b) => a + b, 0);
  const emailDuplicates = [...perRecipient.values()].reduce((n, c) => n + Math.max(0, c - 1), 0);
  report({
    id: "R12b",
    title: "Kill-switch double fire, batched polls",
    fault:
      "duplicate poll-experiments jobs (same and other job ids) on 2 workers; the flag provider's first call times out",
    faults: BATCH_JOBS,
    lost: (paused.length === 0 ? 1 : 0) + (allReviews.length === 0 ? 1 : 0) + (effectsApplied === 0 ? 1 : 0),
    duplicated:
      Math.max(0, paused.length - 1) +
      Math.max(0, allReviews.length - 1) +
      Math.max(0, analyses.length - 1) +
      Math.max(0, bystanderAnalyses.length - 1) +
      emailDuplicates +
      Math.max(0, effectsApplied - pauseEvents.size),
    figures: {
      "poll jobs run": ran.size,
      "analysis rows (harmful, bystander)": `${analyses.length}, ${bystanderAnalyses.length}`,
      "experiment.paused rows": paused.length,
      "emails sent": mails.length,
      "pause deliveries to the provider": pauseDeliveries().length,
      "provider effects applied": effectsApplied,
      "add → paused ms": pausedMs,
    },
    ms: Date.now() - started,
  });
  expect(await stateOf(world, id)).toBe("paused");
  expect(await stateOf(world, bystander!.id)).toBe("running");
  expect(paused).toHaveLength(1);
  expect(allReviews).toHaveLength(1);
  expect(analyses).toHaveLength(1);
  expect(analyses[0]!.decision).toMatchObject({ action: "pause", reason: "kill" });
  // The bystander was analysed once for its one snapshot, however many jobs polled it.
  expect(bystanderAnalyses).toHaveLength(1);
  expect([...perRecipient.values()].every((c) => c === 1)).toBe(true);
  expect(perRecipient.size).toBe(notifications.length);
  expect(pauseEvents.size).toBe(1);
  expect(effectsApplied).toBe(1);
});
