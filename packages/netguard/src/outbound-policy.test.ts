import { describe, expect, it } from "vitest";
import {
  checkOutboundUrl,
  guardedFetch,
  OutboundBlockedError,
  outboundPolicyFromEnv,
  parseOutboundPolicy,
  type Resolver,
  redactUrl,
} from "./outbound-policy";

/** A DNS stand-in: names map to fixed address lists; anything else does not resolve. */
const DNS: Readonly<Record<string, readonly string[]>> = {
  "api.example.com": ["93.184.216.34"],
  "v6.example.com": ["2606:4700:4700::1111"],
  "dual.example.com": ["93.184.216.34", "2606:4700:4700::1111"],
  "127.0.0.1.nip.io": ["127.0.0.1"],
  "169.254.169.254.nip.io": ["169.254.169.254"],
  "metadata.google.internal": ["169.254.169.254"],
  "instance-data.ec2.internal": ["fd00:ec2::254"],
  "mixed.example.com": ["93.184.216.34", "10.0.0.5"],
  "mixed-last.example.com": ["8.8.8.8", "1.1.1.1", "192.168.1.1"],
  "loopback6.example.com": ["::1"],
  "mapped.example.com": ["::ffff:169.254.169.254"],
  "nat64.example.com": ["64:ff9b::a00:1"],
  "sixtofour.example.com": ["2002:7f00:1::1"],
  "cgnat.example.com": ["100.64.0.1"],
  "mixpanel.internal": ["10.1.2.3"],
};

const resolve: Resolver = async (host) => {
  const addresses = DNS[host];
  if (addresses === undefined) throw new Error(`getaddrinfo ENOTFOUND ${host}`);
  return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
};

const strict = parseOutboundPolicy("");

async function refusal(url: string, policy = strict): Promise<OutboundBlockedError> {
  const error = await checkOutboundUrl(url, policy, resolve).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, `${url} should be refused`).toBeInstanceOf(OutboundBlockedError);
  return error as OutboundBlockedError;
}

describe("checkOutboundUrl refuses hostile URLs", () => {
  const hostile: readonly [url: string, address: string | null][] = [
    ["http://127.0.0.1/", "127.0.0.1"],
    ["http://127.255.255.254:8080/x", "127.255.255.254"],
    ["http://2130706433/", "127.0.0.1"], // decimal
    ["http://017700000001/", "127.0.0.1"], // octal, one part
    ["http://0177.0.0.1/", "127.0.0.1"], // octal
    ["http://0x7f.1/", "127.0.0.1"], // hex, short
    ["http://0x7f000001/", "127.0.0.1"], // hex, one part
    ["http://127.1/", "127.0.0.1"], // short form
    ["http://0.0.0.0/", "0.0.0.0"],
    ["http://0/", "0.0.0.0"],
    ["http://[::]/", "::"],
    ["http://[::1]/", "::1"],
    ["http://[::ffff:127.0.0.1]/", "::ffff:7f00:1"],
    ["http://[0:0:0:0:0:ffff:a9fe:a9fe]/latest/meta-data/", "::ffff:a9fe:a9fe"],
    ["http://[fe80::1]/", "fe80::1"],
    ["http://[fd12:3456::1]/", "fd12:3456::1"],
    ["http://[ff02::1]/", "ff02::1"],
    ["http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1"], // NAT64 of 127.0.0.1
    ["http://[2002:a9fe:a9fe::1]/", "2002:a9fe:a9fe::1"], // 6to4 of 169.254.169.254
    ["http://169.254.169.254/latest/meta-data/iam/", "169.254.169.254"],
    ["http://10.0.0.1/", "10.0.0.1"],
    ["http://172.16.5.4/", "172.16.5.4"],
    ["http://172.31.255.255/", "172.31.255.255"],
    ["http://192.168.0.1/", "192.168.0.1"],
    ["http://100.64.0.1/", "100.64.0.1"], // CGNAT
    ["http://224.0.0.1/", "224.0.0.1"],
    ["http://255.255.255.255/", "255.255.255.255"],
    ["http://good.com@127.0.0.1/", "127.0.0.1"], // userinfo trick
    ["http://user:pw@10.0.0.1/", "10.0.0.1"],
    ["http://127.0.0.1.nip.io/", "127.0.0.1"],
    ["http://169.254.169.254.nip.io/", "169.254.169.254"],
    ["http://metadata.google.internal/computeMetadata/v1/", "169.254.169.254"],
    ["http://instance-data.ec2.internal/", "fd00:ec2::254"],
    ["https://mixed.example.com/", "10.0.0.5"], // public + private
    ["https://mixed-last.example.com/", "192.168.1.1"],
    ["https://loopback6.example.com/", "::1"],
    ["https://mapped.example.com/", "::ffff:169.254.169.254"],
    ["https://nat64.example.com/", "64:ff9b::a00:1"],
    ["https://sixtofour.example.com/", "2002:7f00:1::1"],
    ["https://cgnat.example.com/", "100.64.0.1"],
  ];

  it.each(hostile)("%s", async (url, address) => {
    const error = await refusal(url);
    expect(error.code).toBe("outbound_address_refused");
    expect(error.address).toBe(address);
    expect(error.message).toContain("OUTBOUND_ALLOW");
  });

  it.each(["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://example.com/", "data:text/plain,hi"])(
    "refuses the scheme of %s",
    async (url) => {
      expect((await refusal(url)).code).toBe("outbound_scheme_refused");
    },
  );

  it("refuses a name that does not resolve", async () => {
    expect((await refusal("https://nowhere.invalid/")).code).toBe("outbound_unresolvable");
  });

  it("never prints credentials", async () => {
    const error = await refusal("http://admin:hunter2@10.0.0.1/");
    expect(error.message).not.toContain("hunter2");
    expect(error.url).toBe("http://redacted@10.0.0.1/");
    expect(redactUrl("https://u:p@example.com/a?b=1")).toBe("https://redacted@example.com/a?b=1");
  });
});

describe("checkOutboundUrl lets public and allowed targets through", () => {
  it.each([
    "https://api.example.com/v1",
    "https://v6.example.com/",
    "https://dual.example.com/",
    "http://93.184.216.34/",
    "https://[2606:4700:4700::1111]/",
    "https://8.8.8.8/",
  ])("%s", async (url) => {
    await expect(checkOutboundUrl(url, strict, resolve)).resolves.toMatchObject({ url: new URL(url) });
  });

  it("allows listed IPs, CIDRs and host names, and nothing beyond them", async () => {
    const policy = parseOutboundPolicy("127.0.0.1, 10.0.0.0/8 mixpanel.internal");
    await expect(checkOutboundUrl("http://127.0.0.1:4000/", policy, resolve)).resolves.toBeDefined();
    await expect(checkOutboundUrl("http://[::ffff:127.0.0.1]/", policy, resolve)).resolves.toBeDefined();
    await expect(checkOutboundUrl("https://mixed.example.com/", policy, resolve)).resolves.toBeDefined();
    await expect(checkOutboundUrl("https://MIXPANEL.internal/api", policy, resolve)).resolves.toBeDefined();
    expect((await refusal("http://127.0.0.2/", policy)).address).toBe("127.0.0.2");
    expect((await refusal("http://169.254.169.254/", policy)).address).toBe("169.254.169.254");
    expect((await refusal("http://192.168.0.1/", policy)).address).toBe("192.168.0.1");
  });

  it("rejects a malformed allowlist entry by name", () => {
    expect(() => parseOutboundPolicy("10.0.0.0/99")).toThrow(/OUTBOUND_ALLOW: "10.0.0.0\/99" is not a CIDR/);
    expect(() => parseOutboundPolicy("http://x")).toThrow(/OUTBOUND_ALLOW/);
  });
});

describe("outboundPolicyFromEnv", () => {
  it("allows loopback outside production by default, and nothing extra in production", async () => {
    const dev = outboundPolicyFromEnv({ NODE_ENV: "test" });
    await expect(checkOutboundUrl("http://127.0.0.1:9/", dev, resolve)).resolves.toBeDefined();
    await expect(checkOutboundUrl("http://[::1]:9/", dev, resolve)).resolves.toBeDefined();
    expect((await refusal("http://169.254.169.254/", dev)).code).toBe("outbound_address_refused");
    expect((await refusal("http://10.0.0.1/", dev)).code).toBe("outbound_address_refused");
    const prod = outboundPolicyFromEnv({ NODE_ENV: "production" });
    expect((await refusal("http://127.0.0.1:9/", prod)).code).toBe("outbound_address_refused");
  });

  it("OUTBOUND_ALLOW replaces the default, even when empty", async () => {
    const none = outboundPolicyFromEnv({ NODE_ENV: "development", OUTBOUND_ALLOW: "" });
    expect((await refusal("http://127.0.0.1/", none)).code).toBe("outbound_address_refused");
    const some = outboundPolicyFromEnv({ NODE_ENV: "production", OUTBOUND_ALLOW: "10.0.0.0/8" });
    await expect(checkOutboundUrl("http://10.9.9.9/", some, resolve)).resolves.toBeDefined();
  });
});

describe("guardedFetch", () => {
  /** A transport answering from a table of URL → response; records what was sent. */
  function transport(routes: Record<string, () => Response>): { fetch: typeof fetch; sent: [string, RequestInit][] } {
    const sent: [string, RequestInit][] = [];
    return {
      sent,
      fetch: (async (input: string | URL | Request, init?: RequestInit) => {
        const url = String(input);
        sent.push([url, init ?? {}]);
        const route = routes[url];
        if (route === undefined) throw new Error(`unexpected request to ${url}`);
        return route();
      }) as typeof fetch,
    };
  }
  const redirect = (location: string, status = 302): Response => new Response(null, { status, headers: { location } });

  it("re-checks every redirect and refuses one to a private address before connecting", async () => {
    const t = transport({
      "https://api.example.com/start": () => redirect("https://v6.example.com/next"),
      "https://v6.example.com/next": () => redirect("http://169.254.169.254/latest/meta-data/"),
    });
    const guarded = guardedFetch({ policy: strict, fetch: t.fetch, resolve });
    const error = await guarded("https://api.example.com/start").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutboundBlockedError);
    expect((error as OutboundBlockedError).address).toBe("169.254.169.254");
    expect(t.sent.map(([url]) => url)).toEqual(["https://api.example.com/start", "https://v6.example.com/next"]);
    expect(t.sent.every(([, init]) => init.redirect === "manual")).toBe(true);
  });

  it("refuses a relative redirect that lands on a name resolving to loopback", async () => {
    const t = transport({ "https://api.example.com/a": () => redirect("//127.0.0.1.nip.io/admin", 307) });
    const guarded = guardedFetch({ policy: strict, fetch: t.fetch, resolve });
    await expect(guarded("https://api.example.com/a")).rejects.toThrow(
      /127\.0\.0\.1\.nip\.io resolves to 127\.0\.0\.1/,
    );
  });

  it("follows public redirects, turning a POST into a GET on 303 and dropping credentials across origins", async () => {
    const t = transport({
      "https://api.example.com/post": () => redirect("https://dual.example.com/done", 303),
      "https://dual.example.com/done": () => new Response("ok"),
    });
    const guarded = guardedFetch({ policy: strict, fetch: t.fetch, resolve });
    const response = await guarded("https://api.example.com/post", {
      method: "POST",
      body: "{}",
      headers: { authorization: "Bearer k" },
    });
    expect(await response.text()).toBe("ok");
    const [, second] = t.sent[1]!;
    expect(second.method).toBe("GET");
    expect(second.body).toBeUndefined();
    expect(new Headers(second.headers).get("authorization")).toBeNull();
  });

  it("stops after maxRedirects hops", async () => {
    const t = transport({ "https://api.example.com/loop": () => redirect("https://api.example.com/loop") });
    const guarded = guardedFetch({ policy: strict, fetch: t.fetch, resolve, maxRedirects: 5 });
    await expect(guarded("https://api.example.com/loop")).rejects.toThrow(/more than 5 redirects/);
    expect(t.sent).toHaveLength(6);
  });

  it("with maxRedirects 0 returns the 3xx as is, without following", async () => {
    const t = transport({ "https://api.example.com/hook": () => redirect("http://10.0.0.1/") });
    const guarded = guardedFetch({ policy: strict, fetch: t.fetch, resolve, maxRedirects: 0 });
    expect((await guarded("https://api.example.com/hook")).status).toBe(302);
    expect(t.sent).toHaveLength(1);
  });

  it("refuses the first URL without sending anything", async () => {
    const t = transport({});
    const guarded = guardedFetch({ policy: strict, fetch: t.fetch, resolve });
    await expect(guarded("http://0x7f.1/")).rejects.toBeInstanceOf(OutboundBlockedError);
    expect(t.sent).toHaveLength(0);
  });
});

describe("guardedFetch against DNS rebinding (a real connection)", () => {
  it("connects only to the address it checked: a name that turns to loopback at connect time is refused", async () => {
    const { createServer } = await import("node:http");
    let hits = 0;
    const server = createServer((_request, response) => {
      hits += 1;
      response.end("internal secret");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    try {
      // The check sees a public address; every later resolution (the one that connects) says 127.0.0.1.
      let calls = 0;
      const rebinding: Resolver = async () => {
        calls += 1;
        return [{ address: calls === 1 ? "93.184.216.34" : "127.0.0.1", family: 4 }];
      };
      const send = guardedFetch({ policy: parseOutboundPolicy(""), resolve: rebinding });
      const error = await send(`http://rebind.example.com:${port}/`).then(
        () => null,
        (e: unknown) => e as Error & { cause?: unknown },
      );
      expect(error).not.toBeNull();
      expect(error!.cause).toBeInstanceOf(OutboundBlockedError);
      expect((error!.cause as OutboundBlockedError).code).toBe("outbound_address_refused");
      expect((error!.cause as OutboundBlockedError).message).toContain("127.0.0.1 (loopback) at connect time");
      expect(calls).toBeGreaterThanOrEqual(2);
      expect(hits).toBe(0);

      // The same name, allowed: the pinned connection reaches the server.
      const allowed = guardedFetch({
        policy: parseOutboundPolicy("127.0.0.0/8"),
        resolve: async () => [{ address: "127.0.0.1", family: 4 }],
      });
      const response = await allowed(`http://rebind.example.com:${port}/`);
      expect(await response.text()).toBe("internal secret");
      expect(hits).toBe(1);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
