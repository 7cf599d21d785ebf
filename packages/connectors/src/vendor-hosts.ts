/**
 * A SaaS connector talks only to its vendor's documented API hosts. An
 * `api_url` in outcome.yaml picks one of them (a data-residency region, say);
 * any other base URL (a proxy, a local server in tests) must be allowed by
 * the operator in `SOURCE_API_URLS`, never by outcome.yaml alone: a member
 * who could name any host would send the source's credentials there.
 */
import { type ConfigReader, show } from "./config-reader";
import { ConnectorError } from "./connector-error";

/** `https://EU.mixpanel.com/api/query/` → `https://eu.mixpanel.com/api/query`: the form URLs are compared in. */
export function normalizeApiUrl(url: string): string | undefined {
  if (!URL.canParse(url)) return undefined;
  const parsed = new URL(url);
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return undefined;
  if (parsed.username !== "" || parsed.password !== "" || parsed.search !== "" || parsed.hash !== "") return undefined;
  return `${parsed.origin}${parsed.pathname.replace(/\/+$/u, "")}`;
}

/**
 * The API base `value` names, when it is one of the vendor's documented
 * bases or one the operator allows for this connector.
 *
 * @param documented the vendor's documented base URLs
 * @param allowed base URLs the operator allows besides them (`SOURCE_API_URLS`)
 * @throws ConnectorError `invalid_config` for a malformed URL; `source_refused` for a host neither lists
 */
export function vendorApiUrl(
  reader: ConfigReader,
  field: string,
  value: string,
  documented: readonly string[],
  allowed: readonly string[] = [],
): string {
  const url = normalizeApiUrl(value);
  if (url === undefined) {
    throw reader.invalid(
      field,
      `${show(value)} is not an http(s) URL without credentials, query or fragment`,
      `write one of ${documented.join(", ")}`,
      { value },
    );
  }
  const permitted = [...documented, ...allowed].map((u) => normalizeApiUrl(u) ?? u);
  if (permitted.includes(url)) return url;
  throw new ConnectorError(
    "source_refused",
    `${reader.type} connector: ${field}: ${show(value)} is not one of ${reader.type}'s documented API hosts (${documented.join(", ")}); another host needs the operator's consent: SOURCE_API_URLS=${reader.type}=${url} on the API and the worker`,
    {
      details: {
        connector: reader.type,
        field,
        value,
        documented,
        problem: `${show(value)} is not one of ${reader.type}'s documented API hosts (${documented.join(", ")})`,
        fix: `another host needs the operator's consent: SOURCE_API_URLS=${reader.type}=${url} on the API and the worker`,
      },
    },
  );
}

/**
 * Parses the operator's `SOURCE_API_URLS`: `type=url` pairs separated by
 * commas or blanks (`mixpanel=https://mixpanel-proxy.internal/api/query`).
 *
 * @returns connector type → allowed base URLs
 * @throws Error naming the malformed entry
 */
export function parseAllowedApiUrls(text: string | undefined): Record<string, string[]> {
  const allowed: Record<string, string[]> = {};
  for (const entry of (text ?? "").split(/[\s,]+/u).filter((e) => e !== "")) {
    const at = entry.indexOf("=");
    const type = entry.slice(0, at);
    const url = normalizeApiUrl(entry.slice(at + 1));
    if (at <= 0 || !/^[a-z][a-z0-9_]*$/u.test(type) || url === undefined) {
      throw new Error(
        `SOURCE_API_URLS: "${entry}" is not <connector type>=<http(s) URL>; write e.g. mixpanel=https://mixpanel-proxy.internal/api/query`,
      );
    }
    allowed[type] = [...(allowed[type] ?? []), url];
  }
  return allowed;
}
