/**
 * No secret reaches a log: a gate decided from its email link, end to end (the
 * API listening on a port with its production logger options at the most
 * verbose level, the worker sending through a real SMTP server in this
 * process, the link followed with an HTTP client), and every line the API and
 * the worker wrote is searched for the link's token. Also the query secrets
 * of other URLs (`token`, `key`, `code`). Real Postgres and Redis.
 */
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { apiLoggerOptions } from "@outcome-runtime/api/logger";
import { buildTestApp } from "@outcome-runtime/api/test-app";
import { gates as gateRows } from "@outcome-runtime/db";
import { createMailer, mailConfigFromEnv } from "@outcome-runtime/notify";
import { type MailCatcher, startMailCatcher } from "@outcome-runtime/notify/test-support";
import {
  applyOutcome,
  connectorProvider,
  proposeExperiment,
  sourceAccessFromEnv,
  transitionOutcome,
} from "@outcome-runtime/runtime";
import {
  createTestDatabase,
  deleteRedisKeys,
  freePort,
  outcomeVariant,
  type Seeded,
  seedWorkspace,
  type TestDatabase,
  waitFor,
} from "@outcome-runtime/testing";
import { startWorker } from "@outcome-runtime/worker";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const MAYA = "maya.pm@acme.example";

/** A stream that keeps every line written to it. */
function captured(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      done();
    },
  });
  return { stream, lines };
}

let t: TestDatabase;
let seed: Seeded;
let redis: Redis;
let workerRedis: Redis;
let smtp: MailCatcher;
let baseUrl: string;
let app: Awaited<ReturnType<typeof buildTestApp>>;
let worker: Awaited<ReturnType<typeof startWorker>>;
const prefix = `test-${randomBytes(6).toString("hex")}`;
const apiLog = captured();
const workerLog = captured();

beforeAll(async () => {
  t = await createTestDatabase({ max: 20 });
  seed = await seedWorkspace(t.db);
  smtp = await startMailCatcher();
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  workerRedis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  app = await buildTestApp(
    t.db,
    redis,
    { publicUrl: baseUrl, queuePrefix: prefix, rateLimitNamespace: `${prefix}:rate-limit:` },
    // What server.ts passes, at the most verbose level, into the captured stream.
    { logger: apiLoggerOptions("trace", { stream: apiLog.stream }) },
  );
  await app.listen({ port, host: "127.0.0.1" });
  const mailConfig = mailConfigFromEnv({ SMTP_URL: smtp.url, OUTCOME_RUNTIME_PUBLIC_URL: baseUrl });
  const logger = pino({ level: "trace", base: { service: "worker" } }, workerLog.stream);
  worker = await startWorker({
    db: t.db,
    redis: workerRedis,
    connectors: connectorProvider({ db: t.db, access: sourceAccessFromEnv({}) }),
    logger,
    prefix,
    mailer: createMailer(mailConfig, (fields, message) => logger.info(fields, message)),
    links: { publicUrl: mailConfig.publicUrl },
    outboxIntervalMs: 100,
    reconcileIntervalMs: 60_000,
  });
});

afterAll(async () => {
  await worker?.close();
  await app?.close();
  await smtp?.close();
  if (redis) {
    await deleteRedisKeys(redis, prefix);
    redis.disconnect();
  }
  workerRedis?.disconnect();
  await t?.drop();
});

describe("logs never hold a secret", () => {
  it("a gate decided from its email link leaves its token in no log line of the API or the worker, at level trace", async () => {
    await applyOutcome({ db: t.db }, seed.admin, { source: outcomeVariant("log-secrets") });
    await transitionOutcome({ db: t.db }, seed.admin, "log-secrets", "activate", null);
    const proposed = await proposeExperiment({ db: t.db }, seed.admin, "log-secrets", {
      title: "Express pay",
      statement: "Express pay lowers checkout abandonment",
      touchedPaths: ["apps/web/src/checkout/x.ts"],
    });
    const gateId = proposed.gate.id;
    const mail = await waitFor("the gate email", () =>
      smtp.received.find((m) => m.to.includes(MAYA) && (m.mail.text ?? "").includes(gateId)),
    );
    const links = ((mail.mail.text ?? "").match(/https?:\/\/\S+\/email\/gates\/\S+/g) ?? []).map((raw) => new URL(raw));
    const approve = links.find((url) => url.pathname.endsWith("/approve"));
    expect(approve).toBeDefined();
    const token = approve!.searchParams.get("token") ?? "";
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);

    // As a person does: open the page, then submit it; and a tampered link (refused) on the way.
    const page = await fetch(approve!);
    expect(page.status).toBe(200);
    const form = new URLSearchParams({ reason: "from the mail" });
    for (const input of (await page.text()).match(/<input\b[^>]*>/g) ?? []) {
      const name = /name="([^"]*)"/.exec(input)?.[1];
      const value = /value="([^"]*)"/.exec(input)?.[1];
      if (name !== undefined && value !== undefined && name !== "reason") form.append(name, value);
    }
    const tampered = new URL(approve!);
    tampered.searchParams.set("token", `${token.slice(0, -2)}xx`);
    expect((await fetch(tampered, { method: "POST", body: new URLSearchParams({ reason: "x" }) })).status).toBe(404);
    const decided = await fetch(approve!, { method: "POST", body: form });
    expect(decided.status).toBe(200);
    expect((await gateRows.findGateById(t.db, gateId))?.status).toBe("approved");

    // Secrets in the query of any other URL: a key, a code, a token.
    const querySecrets = {
      token: `tok${randomBytes(12).toString("hex")}`,
      api_key: `key${randomBytes(12).toString("hex")}`,
      code: `code${randomBytes(12).toString("hex")}`,
    };
    const other = await fetch(`${baseUrl}/v1/outcomes?limit=5&${new URLSearchParams(querySecrets)}`, {
      headers: { authorization: `Bearer ${seed.adminKey}` },
    });
    expect(other.status).toBe(200);

    await app.close(); // flushes the request log
    const all = [...apiLog.lines, ...workerLog.lines].join("\n");
    // The logs did record these requests (this test would prove nothing against an empty log).
    const urls = apiLog.lines.map((line) => (JSON.parse(line) as { req?: { url?: string } }).req?.url).filter(Boolean);
    expect(urls).toEqual(
      expect.arrayContaining([
        `/email/gates/${gateId}/approve?[redacted]`,
        "/v1/outcomes?limit=5&token=[redacted]&api_key=[redacted]&code=[redacted]",
      ]),
    );
    expect(workerLog.lines.length).toBeGreaterThan(0);
    for (const secret of [token, tampered.searchParams.get("token")!, ...Object.values(querySecrets), seed.adminKey]) {
      expect(all.includes(secret), `a log line holds ${secret.slice(0, 6)}…`).toBe(false);
    }
    // Nor the recipient's address from the link's query.
    expect(apiLog.lines.some((line) => line.includes(encodeURIComponent(MAYA)))).toBe(false);
  });
});
