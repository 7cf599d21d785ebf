import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { describe, expect, it } from "vitest";
import {
  checkOutboundUrl,
  guardedFetch,
  nonPublicRange,
  OutboundBlockedError,
  OutboundPolicyError,
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

/** The 8 groups of an IPv6 address as hex text, from 16 bytes. */
function v6(bytes: readonly number[]): string {
  return ipaddr.fromByteArray([...bytes]).toString();
}

/**
 * Every IPv6 form that carries an IPv4 address, built from its 4 bytes (`p`: bytes of a public prefix
 * for the forms that take one).
 */
const EMBEDDINGS: Readonly<Record<string, (v4: readonly number[], p: readonly number[]) => string>> = {
  "IPv4-mapped ::ffff:a.b.c.d": (v4) => v6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4]),
  "IPv4-compatible ::a.b.c.d": (v4) => v6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...v4]),
  "SIIT ::ffff:0:a.b.c.d": (v4) => v6([0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, ...v4]),
  "NAT64 64:ff9b::/96": (v4) => v6([0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, ...v4]),
  "NAT64 local-use 64:ff9b:1::/48 (/96 layout)": (v4) => v6([0, 0x64, 0xff, 0x9b, 0, 1, 0, 0, 0, 0, 0, 0, ...v4]),
  // RFC 6052 §2.2, a /48 prefix: v4 in bits 48–63 and 72–87, around the u-octet.
  "NAT64 local-use 64:ff9b:1::/48 (/48 layout)": (v4) =>
    v6([0, 0x64, 0xff, 0x9b, 0, 1, v4[0]!, v4[1]!, 0, v4[2]!, v4[3]!, 0, 0, 0, 0, 0]),
  "6to4 2002:aabb:ccdd::/48": (v4, p) => v6([0x20, 0x02, ...v4, p[0]!, p[1]!, 0, 0, 0, 0, 0, 0, 0, 1]),
  "ISATAP <prefix>:0:5efe:a.b.c.d": (v4, p) =>
    v6([0x26, 0x07, 0xf8, 0xb0, p[0]!, p[1]!, 0, 0, 0, 0, 0x5e, 0xfe, ...v4]),
  "ISATAP <prefix>:200:5efe:a.b.c.d": (v4, p) =>
    v6([0x26, 0x07, 0xf8, 0xb0, p[0]!, p[1]!, 0, 0, 0x02, 0, 0x5e, 0xfe, ...v4]),
  // RFC 4380 §4: server IPv4 in bits 32–63, the client's IPv4 XORed with ones in the last 32 bits.
  "Teredo 2001::/32 (client)": (v4, p) =>
    v6([0x20, 0x01, 0, 0, 8, 8, 8, 8, 0x80, 0, p[0]!, p[1]!, ...v4.map((b) => b ^ 0xff)]),
  "Teredo 2001::/32 (server)": (v4, p) => v6([0x20, 0x01, 0, 0, ...v4, 0x80, 0, p[0]!, p[1]!, 1, 2, 3, 4]),
};

/** IPv4 addresses that are not public: loopback, private, link-local (metadata), CGNAT, unspecified, ... */
const nonPublicV4 = fc.oneof(
  fc.constantFrom("127.0.0.1", "169.254.169.254", "10.0.0.1", "192.168.1.1", "172.16.0.1", "100.64.0.1", "0.0.0.0"),
  fc
    .tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255))
    .map((b) => b.join("."))
    .filter((a) => ipaddr.parse(a).range() !== "unicast"),
);
const publicV4 = fc
  .tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255))
  .map((b) => b.join("."))
  .filter((a) => ipaddr.parse(a).range() === "unicast");
const prefixBytes = fc.tuple(fc.nat(255), fc.nat(255));

describe("IPv6 forms embedding an IPv4 address", () => {
  it("refuses the reported [::127.0.0.1] (the URL parser writes it [::7f00:1]) and [::7f00:1]", async () => {
    for (const url of ["http://[::127.0.0.1]/", "http://[::7f00:1]/", "http://[::a9fe:a9fe]/latest/meta-data/"]) {
      const error = await refusal(url);
      expect(error.code).toBe("outbound_address_refused");
      expect(error.message).toMatch(/ipv4Compatible of (loopback|linkLocal)/);
    }
  });

  it.each(Object.keys(EMBEDDINGS))(
    "%s of any non-public IPv4 is refused, as a literal and through DNS",
    async (form) => {
      const embed = EMBEDDINGS[form]!;
      await fc.assert(
        fc.asyncProperty(nonPublicV4, prefixBytes, async (v4, p) => {
          const address = embed(ipaddr.parse(v4).toByteArray(), p);
          expect(nonPublicRange(ipaddr.parse(address)), `${address} (${v4})`).not.toBeNull();
          const literal = await refusal(`http://[${address}]/`);
          expect(literal.code).toBe("outbound_address_refused");
          const viaDns = await checkOutboundUrl("https://embedded.example.com/", strict, async () => [
            { address, family: 6 },
          ]).then(
            () => null,
            (e: unknown) => e,
          );
          expect(viaDns, `${address} through DNS`).toBeInstanceOf(OutboundBlockedError);
        }),
        { numRuns: 60 },
      );
    },
  );

  it("judges mapped, SIIT, NAT64 /96, 6to4 and ISATAP forms of a public IPv4 as public; refuses the others whatever they carry", () => {
    const judgedByEmbedded = new Set([
      "IPv4-mapped ::ffff:a.b.c.d",
      "SIIT ::ffff:0:a.b.c.d",
      "NAT64 64:ff9b::/96",
      "6to4 2002:aabb:ccdd::/48",
      "ISATAP <prefix>:0:5efe:a.b.c.d",
      "ISATAP <prefix>:200:5efe:a.b.c.d",
    ]);
    fc.assert(
      fc.property(publicV4, prefixBytes, (v4, p) => {
        for (const [form, embed] of Object.entries(EMBEDDINGS)) {
          const address = embed(ipaddr.parse(v4).toByteArray(), p);
          const range = nonPublicRange(ipaddr.parse(address));
          if (judgedByEmbedded.has(form)) expect(range, `${form}: ${address}`).toBeNull();
          else expect(range, `${form}: ${address}`).not.toBeNull();
        }
      }),
      { numRuns: 200 },
    );
  });

  it("names the form and the embedded range", () => {
    expect(nonPublicRange(ipaddr.parse("::7f00:1"))).toBe("ipv4Compatible of loopback");
    expect(nonPublicRange(ipaddr.parse("::ffff:0:a00:1"))).toBe("rfc6145 of private");
    expect(nonPublicRange(ipaddr.parse("2607:f8b0::5efe:a9fe:a9fe"))).toBe("isatap of linkLocal");
    expect(nonPublicRange(ipaddr.parse("64:ff9b:1::808:808"))).toBe("rfc8215 (local-use NAT64)");
    expect(nonPublicRange(ipaddr.parse("2001:0:4136:e378:8000:63bf:3fff:fdd2"))).toBe("teredo");
    expect(nonPublicRange(ipaddr.parse("::808:808"))).toBe("ipv4Compatible (deprecated)");
    expect(nonPublicRange(ipaddr.parse("2606:4700:4700::1111"))).toBeNull();
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

  it("names every malformed entry at once", () => {
    let error: unknown;
    try {
      parseOutboundPolicy("10.0.0.0/99, mixpanel.internal, bad_host!, 127.0.0.1");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(OutboundPolicyError);
    expect((error as OutboundPolicyError).code).toBe("outbound_config_invalid");
    expect((error as OutboundPolicyError).problems).toEqual([
      'OUTBOUND_ALLOW: "10.0.0.0/99" is not a CIDR; write e.g. 10.0.0.0/8',
      'OUTBOUND_ALLOW: "bad_host!" is neither a host name, an IP nor a CIDR',
    ]);
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
