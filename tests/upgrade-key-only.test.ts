/**
 * Upgrading an installation that signed in with API keys only. The database
 * is `fixtures/upgrade/key-only-installation.sql`, written by the release
 * before accounts (its code made the keys, a dashboard session, an active
 * outcome and a pending portfolio review; see the fixture's generator). This
 * version migrates it and must keep every key, session, outcome and gate,
 * turn the people's keys into members, and let those people sign in and
 * decide. Real Postgres and Redis; mail through a real SMTP server.
 */
import { readFileSync } from "node:fs";
import { buildTestApp } from "@outcome-runtime/api/test-app";
import { audit, createDb, type Db, gates, migrateToLatest, outcomes } from "@outcome-runtime/db";
import { createMailer, mailConfigFromEnv } from "@outcome-runtime/notify";
import { type MailCatcher, startMailCatcher } from "@outcome-runtime/notify/test-support";
import { authenticate, sessionPrincipal } from "@outcome-runtime/runtime";
import { createEmptyDatabase, waitFor } from "@outcome-runtime/testing";
import { Redis } from "ioredis";
// biome-ignore lint/style/noRestrictedImports: a pg_dump file is restored as one simple query, which only pg itself sends
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const FIXTURE = new URL("./fixtures/upgrade/", import.meta.url);
const facts = JSON.parse(readFileSync(new URL("key-only-installation.json", FIXTURE), "utf8")) as {
  release: string;
  bootstrapKey: string;
  keys: Record<string, { key: string; role: string }>;
  sessionToken: string;
  gateId: string;
};
const PUBLIC_URL = "http://runtime.test";

let db: Db;
let restored: Awaited<ReturnType<typeof createEmptyDatabase>>;
let applied: readonly string[] = [];
let smtp: MailCatcher;
let redis: Redis;

beforeAll(async () => {
  restored = await createEmptyDatabase();
  const restore = new pg.Client({ connectionString: restored.url });
  await restore.connect();
  await restore.query(readFileSync(new URL("key-only-installation.sql", FIXTURE), "utf8"));
  await restore.end();
  db = createDb({ url: restored.url, max: 10 });
  applied = (await migrateToLatest(db)).applied;
  smtp = await startMailCatcher();
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 1 });
}, 120_000);

afterAll(async () => {
  await db?.destroy();
  await smtp?.close();
  redis?.disconnect();
  await restored?.drop();
});

describe(`an installation of the key-only release ${facts.release}, upgraded`, () => {
  it("applies the accounts migrations, and only those", () => {
    expect(applied).toEqual(["2026-12-19T00-00-viewer-role", "2026-12-19T01-00-members"]);
  });

  it("keeps every key with its role and scopes; the revoked key stays revoked", async () => {
    for (const [name, { key, role }] of Object.entries(facts.keys)) {
      const principal = await authenticate({ db }, key);
      if (name === "former@acme.example") {
        expect(principal).toBeNull();
        continue;
      }
      expect(principal, name).toMatchObject({ name, role });
    }
    expect(await authenticate({ db }, facts.bootstrapKey)).toMatchObject({
      name: "bootstrap-admin",
      role: "admin",
      scopes: ["read", "write", "admin"],
    });
  });

  it("keeps the dashboard session signed in with a key", async () => {
    expect(await sessionPrincipal({ db }, facts.sessionToken)).toMatchObject({
      name: "maya.pm@acme.example",
      role: "approver",
    });
  });

  it("turns the people's live keys into members with the key's role; agents, the bootstrap key and revoked keys stay keys", async () => {
    const rows = await db
      .selectFrom("workspace_members as wm")
      .innerJoin("members as m", "m.id", "wm.member_id")
      .select(["m.email", "wm.role"])
      .orderBy("m.email")
      .execute();
    expect(rows).toEqual([
      { email: "eng.lead@acme.example", role: "member" },
      { email: "lead@acme.example", role: "admin" },
      { email: "maya.pm@acme.example", role: "approver" },
    ]);
    const linked = await db
      .selectFrom("api_keys")
      .select(["name", "member_id"])
      .where("member_id", "is not", null)
      .orderBy("name")
      .execute();
    expect(linked.map((k) => k.name)).toEqual(["Eng.Lead@Acme.example", "lead@acme.example", "maya.pm@acme.example"]);
  });

  it("keeps the outcome and its pending gate; the person it is assigned to signs in by email link and decides it", async () => {
    const gate = await gates.findGateById(db, facts.gateId);
    const outcome = await outcomes.findOutcome(db, gate?.workspaceId ?? "", "checkout-upgrade", { bySlug: true });
    expect(outcome?.state).toBe("active");
    expect(gate).toMatchObject({ status: "pending", kind: "portfolio_review", assignees: ["maya.pm@acme.example"] });

    const mailer = createMailer(
      mailConfigFromEnv({
        SMTP_URL: smtp.url,
        MAIL_FROM: "runtime@acme.example",
        OUTCOME_RUNTIME_PUBLIC_URL: PUBLIC_URL,
      }),
      () => {},
    );
    const app = await buildTestApp(db, redis, {
      publicUrl: PUBLIC_URL,
      accounts: { secret: "an-upgrade-test-secret-of-32-characters", mailer, policy: { installationAdmins: [] } },
    });
    try {
      // The agent's and the admin's keys keep working over HTTP.
      for (const name of ["claude-code", "lead@acme.example"]) {
        const res = await app.inject({
          method: "GET",
          url: "/v1/outcomes",
          headers: { authorization: `Bearer ${facts.keys[name]?.key}` },
        });
        expect(res.statusCode, name).toBe(200);
      }
      await app.inject({ method: "POST", url: "/auth/email-link", payload: { email: "maya.pm@acme.example" } });
      const mail = await waitFor("maya's sign-in link", () =>
        smtp.received.find((m) => m.to.includes("maya.pm@acme.example")),
      );
      const token = /token=([A-Za-z0-9_%.-]+)/.exec(mail.mail.text ?? "")?.[1] ?? "";
      const confirmed = await app.inject({
        method: "POST",
        url: "/auth/email-link/confirm",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        payload: `token=${token}`,
      });
      expect(confirmed.statusCode, confirmed.body).toBe(200);
      const cookies = ([] as string[]).concat(confirmed.headers["set-cookie"] ?? []).map((c) => c.split(";")[0]);
      const csrf = cookies.find((c) => c?.startsWith("or_csrf="))?.slice("or_csrf=".length) ?? "";
      const cookie = cookies.join("; ");
      const session = await app.inject({ method: "GET", url: "/session", headers: { cookie } });
      expect(session.json()).toMatchObject({
        principal: { name: "maya.pm@acme.example", role: "approver" },
        workspace: { id: gate?.workspaceId },
      });
      const decided = await app.inject({
        method: "POST",
        url: `/v1/gates/${facts.gateId}/decision`,
        headers: { cookie, "x-csrf-token": decodeURIComponent(csrf), "content-type": "application/json" },
        payload: { decision: "approve", reason: "after the upgrade" },
      });
      expect(decided.statusCode, decided.body).toBe(200);
      const events = await audit.listAuditEvents(db, gate?.workspaceId ?? "", {
        subjectId: facts.gateId,
        action: "gate.decided",
      });
      expect(events.map((e) => [e.actor?.name, e.channel])).toEqual([["maya.pm@acme.example", "web"]]);
    } finally {
      await app.close();
    }
  });
});
