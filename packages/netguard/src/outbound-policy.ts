/**
 * SSRF guard for the runtime's outbound HTTP (webhooks, the Mixpanel base
 * URL, the OpenAI-compatible and Anthropic base URLs).
 *
 * The check is on the *resolved addresses*, never on the hostname text: a name
 * such as `169.254.169.254.nip.io` is harmless text but reaches the cloud
 * metadata service. Every address a name resolves to must be public unicast,
 * unless the policy allows it (OWASP SSRF Prevention Cheat Sheet, "Case 2").
 * Literal IPs in decimal, octal, hex or short form (`http://2130706433/`,
 * `http://0177.0.0.1/`, `http://0x7f.1/`, `http://127.1/`) are normalised to
 * dotted IPv4 by the WHATWG URL parser before the check.
 *
 * DNS rebinding: a name checked once and resolved again to connect could
 * answer a public address the first time and 127.0.0.1 the second (a TTL of
 * 0). {@link guardedFetch} therefore connects through an undici `Agent` whose
 * `connect.lookup` resolves the name itself and checks every address it hands
 * to the socket: the address connected to is always one that was checked.
 */
import type { LookupAddress } from "node:dns";
import { lookup } from "node:dns/promises";
import ipaddr from "ipaddr.js";
import { Agent } from "undici";

/** One resolved address, as `dns.promises.lookup(host, { all: true })` returns it. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: number;
}

/** Resolves a hostname to every address it has. Injectable for tests. */
export type Resolver = (hostname: string) => Promise<readonly ResolvedAddress[]>;

/** What outbound HTTP may reach besides public unicast addresses. */
export interface OutboundPolicy {
  /** Host names (lower case, exact) whose addresses are all allowed, e.g. `mixpanel.internal`. */
  readonly hosts: readonly string[];
  /** Address ranges allowed even though they are loopback, private, link-local... */
  readonly cidrs: readonly (readonly [ipaddr.IPv4 | ipaddr.IPv6, number])[];
  /** The entries as written, for error messages. */
  readonly source: string;
}

/** The environment variable holding the allowlist. */
export const OUTBOUND_ALLOW_ENV = "OUTBOUND_ALLOW";

/** What the allowlist holds outside production when `OUTBOUND_ALLOW` is unset: loopback only. */
export const DEV_DEFAULT_ALLOW = "127.0.0.0/8,::1/128,localhost";

/** Why an outbound URL was refused. `code` is stable. */
export type OutboundBlockedCode = "outbound_scheme_refused" | "outbound_address_refused" | "outbound_unresolvable";

/** An outbound request refused by the policy. Not retryable: the configuration must change. */
export class OutboundBlockedError extends Error {
  constructor(
    readonly code: OutboundBlockedCode,
    message: string,
    /** The URL with any credentials redacted. */
    readonly url: string,
    /** The refused address, when one was resolved. */
    readonly address: string | null = null,
  ) {
    super(message);
    this.name = "OutboundBlockedError";
  }
}

/** A malformed `OUTBOUND_ALLOW`: one problem per bad entry, each naming the variable and the entry. */
export class OutboundPolicyError extends Error {
  readonly code = "outbound_config_invalid";
  readonly variable = OUTBOUND_ALLOW_ENV;

  constructor(readonly problems: readonly string[]) {
    super(problems.join("\n"));
    this.name = "OutboundPolicyError";
  }
}

/**
 * Parses an allowlist: comma- or whitespace-separated entries, each an IP
 * (`127.0.0.1`, `::1`), a CIDR (`10.0.0.0/8`, `fc00::/7`) or a host name
 * (`mixpanel.internal`, matched exactly and case-insensitively).
 *
 * @throws OutboundPolicyError naming every malformed entry (an IP-looking entry that is not a valid IP or
 *   CIDR, or text that is no host name).
 */
export function parseOutboundPolicy(allow: string): OutboundPolicy {
  const hosts: string[] = [];
  const cidrs: [ipaddr.IPv4 | ipaddr.IPv6, number][] = [];
  const problems: string[] = [];
  for (const raw of allow.split(/[\s,]+/u)) {
    const entry = raw.trim();
    if (entry === "") continue;
    if (entry.includes("/")) {
      try {
        cidrs.push(ipaddr.parseCIDR(entry));
      } catch {
        problems.push(`${OUTBOUND_ALLOW_ENV}: ${JSON.stringify(entry)} is not a CIDR; write e.g. 10.0.0.0/8`);
      }
    } else if (ipaddr.isValid(entry.replace(/^\[|\]$/gu, ""))) {
      const address = ipaddr.parse(entry.replace(/^\[|\]$/gu, ""));
      cidrs.push([address, address.kind() === "ipv4" ? 32 : 128]);
    } else if (/^[a-z0-9.-]+$/iu.test(entry)) {
      hosts.push(entry.toLowerCase().replace(/\.$/u, ""));
    } else {
      problems.push(`${OUTBOUND_ALLOW_ENV}: ${JSON.stringify(entry)} is neither a host name, an IP nor a CIDR`);
    }
  }
  if (problems.length > 0) throw new OutboundPolicyError(problems);
  return { hosts, cidrs, source: allow };
}

/**
 * The policy from the environment: `OUTBOUND_ALLOW` when set (an empty value
 * allows nothing extra); otherwise {@link DEV_DEFAULT_ALLOW} (loopback) unless
 * `NODE_ENV` is `production`, where nothing extra is allowed. Link-local
 * (metadata) and private ranges are never allowed by default. The processes
 * read it at boot and install it with {@link setDefaultOutboundPolicy}.
 *
 * @throws OutboundPolicyError naming every malformed entry of `OUTBOUND_ALLOW`.
 */
export function outboundPolicyFromEnv(env: Readonly<Record<string, string | undefined>>): OutboundPolicy {
  const allow = env[OUTBOUND_ALLOW_ENV];
  if (allow !== undefined) return parseOutboundPolicy(allow);
  return parseOutboundPolicy(env.NODE_ENV === "production" ? "" : DEV_DEFAULT_ALLOW);
}

let processDefault: OutboundPolicy | undefined;

/**
 * The policy of call sites given none: the one installed with
 * {@link setDefaultOutboundPolicy} (the processes do it at boot), else
 * {@link outboundPolicyFromEnv} of `process.env`, read once.
 *
 * @throws OutboundPolicyError when none is installed and `OUTBOUND_ALLOW` is malformed.
 */
export function defaultOutboundPolicy(): OutboundPolicy {
  processDefault ??= outboundPolicyFromEnv(process.env);
  return processDefault;
}

/** Make `policy` the process's default (read at boot, with every other setting, so a bad one stops the start). */
export function setDefaultOutboundPolicy(policy: OutboundPolicy): void {
  processDefault = policy;
}

/** `dns.promises.lookup(host, { all: true })`: every address, as the OS resolver (and `fetch`) sees them. */
export const systemResolver: Resolver = (hostname) => lookup(hostname, { all: true, verbatim: true });

/** The URL as text with any `user:password@` replaced, for messages and logs. */
export function redactUrl(url: URL | string): string {
  try {
    const copy = new URL(String(url));
    if (copy.username !== "" || copy.password !== "") {
      copy.username = "redacted";
      copy.password = "";
    }
    return copy.toString();
  } catch {
    return "<unparseable URL>";
  }
}

/** IPv6 ranges (ipaddr.js names) whose last 32 bits are an IPv4 address: mapped, SIIT (RFC 6145), NAT64 /96. */
const EMBEDS_LAST_32 = new Set(["ipv4Mapped", "rfc6145", "rfc6052"]);

/** RFC 8215's local-use NAT64 prefix: operators choose where the IPv4 bits go (RFC 6052 §2.2), so refused whole. */
const LOCAL_USE_NAT64 = ipaddr.parseCIDR("64:ff9b:1::/48");

/**
 * The IPv4 address an IPv6 address carries, and the name of the form, or
 * null when it carries none:
 * - IPv4-mapped `::ffff:a.b.c.d` and SIIT `::ffff:0:a.b.c.d` (RFC 6145), NAT64
 *   `64:ff9b::a.b.c.d` (RFC 6052): the last 32 bits;
 * - IPv4-compatible `::a.b.c.d` (RFC 4291 §2.5.5.1, deprecated; the URL parser
 *   writes `[::127.0.0.1]` as `[::7f00:1]`): the last 32 bits;
 * - 6to4 `2002:aabb:ccdd::/48` (RFC 3056): bits 16–47;
 * - ISATAP, any prefix with the interface identifier `0:5efe:a.b.c.d` or
 *   `200:5efe:a.b.c.d` (RFC 5214 §6.1; the u/g bits may be set): the last 32 bits.
 *
 * Teredo (`2001::/32`, RFC 4380 §4: the client's IPv4 XORed with ones) is not
 * unpacked: {@link nonPublicRange} refuses it whatever it carries.
 */
function embeddedIPv4(address: ipaddr.IPv6): { form: string; v4: ipaddr.IPv4 } | null {
  const bytes = address.toByteArray();
  const last32 = () => ipaddr.fromByteArray(bytes.slice(12, 16)) as ipaddr.IPv4;
  const range = address.range();
  if (EMBEDS_LAST_32.has(range)) return { form: range, v4: last32() };
  if (range === "6to4") return { form: range, v4: ipaddr.fromByteArray(bytes.slice(2, 6)) as ipaddr.IPv4 };
  if (bytes.slice(0, 12).every((b) => b === 0)) return { form: "ipv4Compatible", v4: last32() };
  if ((bytes[8]! & 0xfc) === 0 && bytes[9] === 0 && bytes[10] === 0x5e && bytes[11] === 0xfe) {
    return { form: "isatap", v4: last32() };
  }
  return null;
}

/**
 * Why an address is not public unicast (its ipaddr.js range name, e.g.
 * `loopback`, `linkLocal`, `private`, or `<form> of <range>` for an IPv6
 * address embedding a non-public IPv4 one, e.g. `ipv4Compatible of loopback`),
 * or null when it is.
 *
 * IPv6 forms that embed an IPv4 address (see `embeddedIPv4`: mapped, SIIT,
 * NAT64 `64:ff9b::/96`, 6to4, ISATAP) are judged by the embedded address.
 * Refused whatever they carry: IPv4-compatible addresses (deprecated since
 * 2006, and `::` / `::1` are among them), Teredo `2001::/32` (the client
 * address is obfuscated, and relays are not ours to judge) and the local-use
 * NAT64 prefix `64:ff9b:1::/48` (RFC 8215: an operator's own translator).
 *
 * @example nonPublicRange(ipaddr.parse("::7f00:1")) // "ipv4Compatible of loopback"
 */
export function nonPublicRange(address: ipaddr.IPv4 | ipaddr.IPv6): string | null {
  const range = address.range();
  if (address.kind() === "ipv4") return range === "unicast" ? null : range;
  const v6 = address as ipaddr.IPv6;
  if (range === "unspecified" || range === "loopback") return range;
  if (v6.match(LOCAL_USE_NAT64)) return "rfc8215 (local-use NAT64)";
  const embedded = embeddedIPv4(v6);
  if (embedded !== null) {
    const inner = nonPublicRange(embedded.v4);
    if (inner !== null) return `${embedded.form} of ${inner}`;
    if (embedded.form === "ipv4Compatible") return "ipv4Compatible (deprecated)";
    // A public IPv4 in a translation form is as public as the IPv4 itself; an ISATAP
    // address is judged by its prefix too (below).
    if (embedded.form !== "isatap") return null;
  }
  return range === "unicast" ? null : range;
}

function allowedByCidr(address: ipaddr.IPv4 | ipaddr.IPv6, policy: OutboundPolicy): boolean {
  const forms: (ipaddr.IPv4 | ipaddr.IPv6)[] = [address];
  if (address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    forms.push((address as ipaddr.IPv6).toIPv4Address());
  }
  return forms.some((form) => policy.cidrs.some(([net, bits]) => net.kind() === form.kind() && form.match(net, bits)));
}

/** The outcome of a passed check: the parsed URL and the addresses it resolved to. */
export interface CheckedUrl {
  readonly url: URL;
  readonly addresses: readonly string[];
}

/**
 * Refuses a URL that is not http(s), or whose host resolves to ANY address
 * that is not public unicast (loopback, private, link-local incl.
 * 169.254.169.254, CGNAT, unspecified, multicast, reserved, and IPv6 forms
 * embedding those), unless the policy allows the host name or the address.
 *
 * @throws OutboundBlockedError naming the redacted URL, the address and the fix (`OUTBOUND_ALLOW`).
 * @example await checkOutboundUrl("https://mixpanel.com/api/query", defaultOutboundPolicy())
 */
export async function checkOutboundUrl(
  input: string | URL,
  policy: OutboundPolicy,
  resolve: Resolver = systemResolver,
): Promise<CheckedUrl> {
  let url: URL;
  try {
    url = new URL(String(input));
  } catch {
    throw new OutboundBlockedError("outbound_scheme_refused", "outbound request refused: not a URL", redactUrl(input));
  }
  const shown = redactUrl(url);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OutboundBlockedError(
      "outbound_scheme_refused",
      `outbound request to ${shown} refused: only http and https are allowed, not ${url.protocol.replace(/:$/u, "")}`,
      shown,
    );
  }
  const host = url.hostname.replace(/^\[|\]$/gu, "").toLowerCase();
  if (policy.hosts.includes(host.replace(/\.$/u, ""))) return { url, addresses: [] };
  let addresses: readonly string[];
  if (ipaddr.isValid(host)) {
    addresses = [host];
  } else {
    try {
      addresses = (await resolve(host)).map((a) => a.address);
    } catch (error) {
      throw new OutboundBlockedError(
        "outbound_unresolvable",
        `outbound request to ${shown} refused: ${host} does not resolve (${error instanceof Error ? error.message : String(error)})`,
        shown,
      );
    }
    if (addresses.length === 0) {
      throw new OutboundBlockedError(
        "outbound_unresolvable",
        `outbound request to ${shown} refused: ${host} has no address`,
        shown,
      );
    }
  }
  for (const text of addresses) {
    let address: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      address = ipaddr.parse(text);
    } catch {
      throw new OutboundBlockedError(
        "outbound_address_refused",
        `outbound request to ${shown} refused: ${host} resolved to ${JSON.stringify(text)}, not an IP address`,
        shown,
        text,
      );
    }
    const range = nonPublicRange(address);
    if (range !== null && !allowedByCidr(address, policy)) {
      throw new OutboundBlockedError(
        "outbound_address_refused",
        `outbound request to ${shown} refused: ${host === text ? "" : `${host} resolves to `}${text} (${range}), which is not a public address; if this target is intended, add ${text} or ${host} to ${OUTBOUND_ALLOW_ENV} (comma-separated hosts, IPs or CIDRs)`,
        shown,
        text,
      );
    }
  }
  return { url, addresses };
}

/**
 * A `net.connect` lookup that resolves `hostname` with `resolve` and refuses
 * (with an {@link OutboundBlockedError}) when any address is not allowed by
 * `policy`, so the socket only ever connects to a checked address. Host names
 * the policy allows by name pass through unchecked.
 */
function pinnedLookup(policy: OutboundPolicy, resolve: Resolver = systemResolver) {
  return (
    hostname: string,
    options: { all?: boolean; family?: number | string },
    callback: (error: Error | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    const host = hostname.replace(/^\[|\]$/gu, "").toLowerCase();
    const found: Promise<readonly ResolvedAddress[]> = ipaddr.isValid(host)
      ? Promise.resolve([{ address: host, family: host.includes(":") ? 6 : 4 }])
      : resolve(host);
    found
      .then((addresses) => {
        if (addresses.length === 0) {
          throw new OutboundBlockedError(
            "outbound_unresolvable",
            `outbound connection refused: ${host} has no address`,
            host,
          );
        }
        if (!policy.hosts.includes(host.replace(/\.$/u, ""))) {
          for (const { address: text } of addresses) {
            const address = ipaddr.parse(text);
            const range = nonPublicRange(address);
            if (range !== null && !allowedByCidr(address, policy)) {
              throw new OutboundBlockedError(
                "outbound_address_refused",
                `outbound connection refused: ${host} resolves to ${text} (${range}) at connect time, which is not a public address; if this target is intended, add ${text} or ${host} to ${OUTBOUND_ALLOW_ENV}`,
                host,
                text,
              );
            }
          }
        }
        const wanted =
          options.family === 6 || options.family === "IPv6"
            ? 6
            : options.family === 4 || options.family === "IPv4"
              ? 4
              : 0;
        const usable = wanted === 0 ? addresses : addresses.filter((a) => a.family === wanted);
        if (usable.length === 0)
          throw new OutboundBlockedError(
            "outbound_unresolvable",
            `outbound connection refused: ${host} has no IPv${wanted} address`,
            host,
          );
        if (options.all)
          callback(
            null,
            usable.map((a) => ({ address: a.address, family: a.family })),
          );
        else callback(null, usable[0]!.address, usable[0]!.family);
      })
      .catch((error: unknown) => callback(error instanceof Error ? error : new Error(String(error)), ""));
  };
}

const pinnedAgents = new WeakMap<OutboundPolicy, Map<Resolver, Agent>>();

/** One connection pool per (policy, resolver), connecting only to addresses {@link pinnedLookup} checked. */
function pinnedAgent(policy: OutboundPolicy, resolve: Resolver): Agent {
  let byResolver = pinnedAgents.get(policy);
  if (byResolver === undefined) {
    byResolver = new Map();
    pinnedAgents.set(policy, byResolver);
  }
  let agent = byResolver.get(resolve);
  if (agent === undefined) {
    agent = new Agent({ connect: { lookup: pinnedLookup(policy, resolve) } });
    byResolver.set(resolve, agent);
  }
  return agent;
}

/** Options of {@link guardedFetch}. */
export interface GuardedFetchOptions {
  /** Default: {@link defaultOutboundPolicy}. */
  readonly policy?: OutboundPolicy | undefined;
  /** The transport; default the global fetch, connecting through {@link pinnedLookup} (no DNS rebinding). */
  readonly fetch?: typeof fetch | undefined;
  readonly resolve?: Resolver | undefined;
  /** Redirects followed, each re-checked; 0 returns the 3xx response as is. Default 5. */
  readonly maxRedirects?: number | undefined;
  /**
   * The only origins (`https://eu.mixpanel.com`) requests and redirects may go
   * to; another is refused before anything is sent. Default: any the policy allows.
   */
  readonly origins?: readonly string[] | undefined;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/**
 * A `fetch` that checks every URL with {@link checkOutboundUrl} before
 * sending, and follows redirects itself (`redirect: "manual"`), re-checking
 * each `Location`. A 303, or a 301/302 after a POST, becomes a GET without a
 * body (as the Fetch standard does); `authorization` and `cookie` are dropped
 * when a redirect changes origin. With `origins`, a request or redirect to
 * any other origin is refused.
 *
 * @throws OutboundBlockedError when a URL or a redirect target is refused, or after `maxRedirects` hops.
 */
export function guardedFetch(options: GuardedFetchOptions = {}): typeof fetch {
  const maxRedirects = options.maxRedirects ?? 5;
  return async (input, init) => {
    const policy = options.policy ?? defaultOutboundPolicy();
    const dispatcher = pinnedAgent(policy, options.resolve ?? systemResolver);
    const inner =
      options.fetch ??
      ((target: Parameters<typeof fetch>[0], requestInit?: RequestInit) =>
        // Node's fetch is undici's: it takes an undici dispatcher (not in the DOM types).
        globalThis.fetch(target, { ...requestInit, dispatcher } as RequestInit));
    let url = input instanceof Request ? input.url : String(input);
    let requestInit: RequestInit = { ...init };
    for (let hop = 0; ; hop++) {
      if (options.origins !== undefined && !options.origins.includes(new URL(url).origin)) {
        throw new OutboundBlockedError(
          "outbound_address_refused",
          `outbound request to ${redactUrl(url)} refused: only ${options.origins.join(", ")} may be reached from here${hop > 0 ? " (a redirect pointed elsewhere)" : ""}`,
          redactUrl(url),
        );
      }
      await checkOutboundUrl(url, policy, options.resolve);
      const response = await inner(input instanceof Request && hop === 0 ? input : url, {
        ...requestInit,
        redirect: "manual",
      });
      const location = response.headers.get("location");
      if (!REDIRECT_STATUSES.has(response.status) || location === null || maxRedirects === 0) return response;
      if (hop >= maxRedirects) {
        throw new OutboundBlockedError(
          "outbound_address_refused",
          `outbound request to ${redactUrl(url)} refused: more than ${maxRedirects} redirects`,
          redactUrl(url),
        );
      }
      await response.body?.cancel();
      const next = new URL(location, url);
      const method = (requestInit.method ?? "GET").toUpperCase();
      if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === "POST")) {
        const { body: _body, ...rest } = requestInit;
        requestInit = { ...rest, method: method === "HEAD" ? "HEAD" : "GET" };
      }
      if (next.origin !== new URL(url).origin) {
        const headers = new Headers(requestInit.headers);
        headers.delete("authorization");
        headers.delete("cookie");
        requestInit = { ...requestInit, headers };
      }
      url = next.toString();
    }
  };
}
