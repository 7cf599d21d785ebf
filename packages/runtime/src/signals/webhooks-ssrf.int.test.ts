/**
 * The webhook sender against a real receiver on 127.0.0.1 and a real
 * Postgres outbox: the outbound policy refuses loopback targets (literal, or a
 * name resolving there) unless allowed, and a receiver's redirect is not followed.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { signals } from "@outcome-runtime/db";
import { parseOutboundPolicy, type Resolver } from "@outcome-runtime/netguard";
import { createTestDatabase, seedWorkspace, type TestDatabase } from "@outcome-runtime/testing";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { deliverWebhook } from "./webhooks";

let t: TestDatabase;
let workspaceId: string;
let server: Server;
let port: number;
let received: string[] = [];
let hookNo = 0;

/** `*.nip.io`-style DNS: every name resolves to the loopback receiver. */
const toLoopback: Resolver = async () => [{ address: "127.0.0.1", family: 4 }];

beforeAll(async () => {
  t = await createTestDatabase();
  ({ workspaceId } = await seedWorkspace(t.db));
  server = createServer((req, res) => {
    received.push(req.url ?? "");
    if (req.url === "/bounce") {
      res.writeHead(302, { location: "http://169.254.169.254/latest/meta-data/" }).end();
      return;
    }
    res.writeHead(204).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await t.drop();
});
beforeEach(() => {
  received = [];
});

async function pendingHook(): Promise<string> {
  hookNo++;
  return signals.enqueueWebhook(t.db, {
    workspaceId,
    eventType: "experiment.paused",
    dedupeKey: `ssrf-test-${hookNo}`,
    payload: { n: hookNo },
  });
}

describe("webhook delivery under the outbound policy", () => {
  const production = parseOutboundPolicy("");

  it("refuses a receiver on 127.0.0.1 when loopback is not allowed, and records why", async () => {
    const id = await pendingHook();
    const url = `http://127.0.0.1:${port}/hooks`;
    await expect(deliverWebhook({ db: t.db }, id, { url, secret: "s", policy: production })).rejects.toThrow(
      /127\.0\.0\.1 \(loopback\), which is not a public address; .*OUTBOUND_ALLOW/,
    );
    expect(received).toEqual([]);
    const row = await t.db
      .selectFrom("webhook_deliveries")
      .select(["status", "attempts", "last_error"])
      .where("id", "=", id)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: "pending", attempts: 1 });
    expect(row.last_error).toMatch(/OUTBOUND_ALLOW/);
  });

  it("refuses a DNS name that resolves to 127.0.0.1, and decimal/hex forms of it", async () => {
    for (const host of ["hooks.127.0.0.1.nip.io", "2130706433", "0x7f.1"]) {
      const id = await pendingHook();
      await expect(
        deliverWebhook(
          { db: t.db },
          id,
          { url: `http://${host}:${port}/hooks`, secret: "s", policy: production, resolve: toLoopback },
          { final: true },
        ),
      ).rejects.toThrow(/refused/);
      expect((await signals.findWebhook(t.db, id))?.status).toBe("failed");
    }
    expect(received).toEqual([]);
  });

  it("delivers to the same receiver once OUTBOUND_ALLOW lists it", async () => {
    const id = await pendingHook();
    const policy = parseOutboundPolicy("127.0.0.1");
    await expect(
      deliverWebhook({ db: t.db }, id, { url: `http://127.0.0.1:${port}/hooks`, secret: "s", policy }),
    ).resolves.toEqual({ status: "delivered" });
    expect(received).toEqual(["/hooks"]);
  });

  it("does not follow a receiver's redirect (to the metadata service here)", async () => {
    const id = await pendingHook();
    const policy = parseOutboundPolicy("127.0.0.0/8");
    await expect(
      deliverWebhook({ db: t.db }, id, { url: `http://127.0.0.1:${port}/bounce`, secret: "s", policy }),
    ).rejects.toThrow(/receiver answered 302/);
    expect(received).toEqual(["/bounce"]);
  });
});
