import { describe, expect, it } from "vitest";
import { checkHostAndOrigin } from "./http";

const policy = { publicUrl: "https://outcomes.acme.example", extraHosts: ["10.0.0.5"] };

describe("checkHostAndOrigin", () => {
  it("accepts the public host, loopback names and the extra hosts, on any port", () => {
    for (const host of [
      "outcomes.acme.example",
      "outcomes.acme.example:443",
      "localhost:8080",
      "127.0.0.1:8080",
      "[::1]:8080",
      "10.0.0.5:8080",
      "LOCALHOST",
    ]) {
      expect(checkHostAndOrigin({ host }, policy), host).toBeNull();
    }
  });

  it("refuses other hosts (DNS rebinding) and a missing Host", () => {
    for (const host of ["evil.example", "evil.example:8080", "outcomes.acme.example.evil.example", "", undefined]) {
      expect(checkHostAndOrigin({ host }, policy), String(host)).toContain("Host");
    }
  });

  it("ignores a wildcard listen address as an allowed host", () => {
    expect(checkHostAndOrigin({ host: "0.0.0.0:8080" }, { ...policy, extraHosts: ["0.0.0.0", "::"] })).toContain(
      "Host",
    );
  });

  it("accepts no Origin, the public origin and loopback origins; refuses any other", () => {
    const host = "localhost:8080";
    expect(checkHostAndOrigin({ host }, policy)).toBeNull();
    expect(checkHostAndOrigin({ host, origin: "https://outcomes.acme.example" }, policy)).toBeNull();
    expect(checkHostAndOrigin({ host, origin: "http://localhost:6274" }, policy)).toBeNull();
    expect(checkHostAndOrigin({ host, origin: "http://127.0.0.1:3000" }, policy)).toBeNull();
    for (const origin of ["https://evil.example", "http://outcomes.acme.example", "null", "file://", "not a url"]) {
      expect(checkHostAndOrigin({ host, origin }, policy), origin).toContain("Origin");
    }
  });
});
