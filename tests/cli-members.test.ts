/**
 * `outcome-runtime members …` as an admin runs it: real CLI processes against
 * a real API on a local port (real Postgres and Redis), without mail set up,
 * so an invitation prints its link. Refusals print `error[code]: detail` and
 * exit 1.
 */
import { execFile } from "node:child_process";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createTestApi, type TestApi } from "@outcome-runtime/api/test-app";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

let api: TestApi;
let url: string;
const keys = { admin: "", member: "" };

beforeAll(async () => {
  api = await createTestApi();
  await api.app.listen({ port: 0, host: "127.0.0.1" });
  url = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
  keys.admin = api.seed.adminKey;
  keys.member = (await api.seed.key("sam@acme.example", "member")).key;
});
afterAll(async () => {
  await api.close();
});

async function cli(as: keyof typeof keys, args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, OUTCOME_RUNTIME_URL: url, OUTCOME_RUNTIME_API_KEY: keys[as] };
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "packages/cli/src/main.ts", ...args], {
      cwd: root,
      env,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("outcome-runtime members", () => {
  it("invites (printing the link when no mail is sent), lists, changes a role and removes; a member may not", async () => {
    const invited = await cli("admin", ["members", "invite", "Maya.PM@acme.example", "--role", "approver"]);
    expect(invited, invited.stderr).toMatchObject({ code: 0 });
    expect(invited.stdout).toContain("invited maya.pm@acme.example as approver; no mail was sent");
    const link = /http\S+\/auth\/invitation\?token=[A-Za-z0-9_-]{43}/.exec(invited.stdout)?.[0];
    expect(link).toBeDefined();

    const refused = await cli("member", ["members", "invite", "x@acme.example"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("error[forbidden]: only an admin can invite people");

    const bad = await cli("admin", ["members", "invite", "x@acme.example", "--role", "agent"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("Allowed choices are admin, approver, member, viewer");

    // She accepts: the link's page, then its form.
    const token = new URL(link ?? "").searchParams.get("token") ?? "";
    const accepted = await api.app.inject({
      method: "POST",
      url: "/auth/invitation/accept",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: `token=${token}`,
    });
    expect(accepted.statusCode).toBe(200);

    const listed = await cli("admin", ["--json", "members", "list"]);
    const { members } = JSON.parse(listed.stdout) as { members: { id: string; email: string; role: string }[] };
    const maya = members.find((m) => m.email === "maya.pm@acme.example");
    expect(maya?.role).toBe("approver");
    const table = await cli("admin", ["members", "list"]);
    expect(table.stdout).toMatch(/EMAIL\s+ROLE\s+LAST SIGN-IN/);
    expect(table.stdout).toContain("maya.pm@acme.example");

    expect((await cli("admin", ["members", "role", maya?.id ?? "", "viewer"])).stdout).toContain("now viewer");
    expect((await cli("admin", ["members", "remove", maya?.id ?? ""])).stdout).toContain(
      "removed; 0 of their keys revoked",
    );
    const gone = await cli("admin", ["members", "remove", maya?.id ?? ""]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("error[not_found]");
  });
});
