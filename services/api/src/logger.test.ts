import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { apiLoggerOptions, REDACTED, redactUrl, serializeRequest } from "./logger";

describe("redactUrl", () => {
  it("drops the whole query of an email link, whatever its parameters are called", () => {
    expect(redactUrl("/email/gates/0b1c/approve?to=maya%40acme.example&token=AbC-123_xyz")).toBe(
      `/email/gates/0b1c/approve?${REDACTED}`,
    );
    expect(redactUrl("//email/gates/x/reject?t=secret")).toBe(`//email/gates/x/reject?${REDACTED}`);
    expect(redactUrl("/EMAIL/gates/x/reject?Token=secret")).toBe(`/EMAIL/gates/x/reject?${REDACTED}`);
    expect(redactUrl("/email/gates/x/approve")).toBe("/email/gates/x/approve");
  });

  it("redacts token, key and code parameters anywhere else, and keeps the others as sent", () => {
    expect(redactUrl("/v1/outcomes?limit=5&token=abc&key=k1&code=c1&cursor=x%3D")).toBe(
      `/v1/outcomes?limit=5&token=${REDACTED}&key=${REDACTED}&code=${REDACTED}&cursor=x%3D`,
    );
    expect(redactUrl("/cb?access_token=a&api-key=b&client_secret=c&PASSWORD=d&refresh_token")).toBe(
      `/cb?access_token=${REDACTED}&api-key=${REDACTED}&client_secret=${REDACTED}&PASSWORD=${REDACTED}&refresh_token=${REDACTED}`,
    );
    // Percent-encoded names are recognised too; names that merely contain the word are not secrets.
    expect(redactUrl("/x?%74oken=a&keyboard=qwerty&zipcode=1")).toBe(
      `/x?%74oken=${REDACTED}&keyboard=qwerty&zipcode=1`,
    );
    expect(redactUrl("/v1/outcomes")).toBe("/v1/outcomes");
    expect(redactUrl("/x?%E0%A4%A=1&token=a")).toBe(`/x?%E0%A4%A=1&token=${REDACTED}`);
  });
});

describe("the API's logger options", () => {
  it("serialise a request with its URL redacted, and redact credential headers, at every level", () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _e, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = pino(apiLoggerOptions("trace"), stream);
    const req = {
      method: "POST",
      url: "/email/gates/g/approve?to=a%40b.example&token=s3cr3t",
      headers: { authorization: "Bearer ork_s3cr3t", cookie: "or_session=s3cr3t" },
      host: "localhost",
      ip: "127.0.0.1",
      socket: { remotePort: 5555 },
    };
    for (const level of ["trace", "debug", "info", "warn", "error", "fatal"] as const) {
      logger[level]({ req }, "incoming request");
      logger[level]({ req: { headers: req.headers } }, "headers");
    }
    expect(lines).toHaveLength(12);
    expect(lines.join("")).not.toContain("s3cr3t");
    expect(JSON.parse(lines[0]!).req).toEqual(serializeRequest(req));
    expect(JSON.parse(lines[0]!).req.url).toBe(`/email/gates/g/approve?${REDACTED}`);
  });
});
