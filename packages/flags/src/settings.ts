/**
 * Reading a provider's `flags` settings from outcome.yaml: each wrong value
 * is an `invalid_config` error that names `flags.<field>`, the value and the
 * fix; an API URL is one the vendor documents or one the operator allows.
 */
import { FlagProviderError } from "./provider";

/** A value for messages: JSON, cut at 80 characters. */
export function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** The `invalid_config` error for `flags.<field>`. */
export function invalidSetting(type: string, field: string, problem: string, fix: string): FlagProviderError {
  return new FlagProviderError("invalid_config", `${type} flags: flags.${field}: ${problem}; ${fix}`, {
    details: { provider: type, field: `flags.${field}`, problem, fix },
  });
}

/**
 * A string setting matching `pattern` (what `described` says in the message);
 * `fallback` when it is absent, or an error when there is none.
 *
 * @throws FlagProviderError `invalid_config`
 */
export function stringSetting(
  type: string,
  settings: Readonly<Record<string, unknown>>,
  field: string,
  pattern: RegExp,
  described: string,
  fallback?: string,
): string {
  const value = settings[field];
  if (value === undefined || value === null) {
    if (fallback !== undefined) return fallback;
    throw invalidSetting(type, field, "is missing", `write ${described}`);
  }
  if (typeof value !== "string" || !pattern.test(value)) {
    throw invalidSetting(type, field, `${show(value)} is not ${described}`, `write ${described}`);
  }
  return value;
}

/** `https://App.LaunchDarkly.com/` → `https://app.launchdarkly.com`: the form API URLs are compared in. */
export function normalizeApiUrl(url: string): string | undefined {
  if (!URL.canParse(url)) return undefined;
  const parsed = new URL(url);
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return undefined;
  if (parsed.username !== "" || parsed.password !== "" || parsed.search !== "" || parsed.hash !== "") return undefined;
  return `${parsed.origin}${parsed.pathname.replace(/\/+$/u, "")}`;
}

/**
 * The API base URL `flags.api_url` names (default: the first documented one):
 * one of the vendor's documented bases, or one the operator allows for this
 * provider (`FLAG_API_URLS=<type>=<url>` on the API and the worker). A member
 * who could name any host would send the flag token there.
 *
 * @throws FlagProviderError `invalid_config` for a missing or malformed URL; `provider_refused` for a host
 *   neither lists
 */
export function apiUrlSetting(
  type: string,
  settings: Readonly<Record<string, unknown>>,
  documented: readonly string[],
  allowed: readonly string[],
): string {
  const value = settings.api_url ?? documented[0];
  const example = documented[0] ?? "https://unleash.example.com/api";
  if (value === undefined) {
    throw invalidSetting(type, "api_url", "is missing", `write the API's base URL, e.g. ${example}`);
  }
  const url = typeof value === "string" ? normalizeApiUrl(value) : undefined;
  if (url === undefined) {
    throw invalidSetting(
      type,
      "api_url",
      `${show(value)} is not an http(s) URL without credentials, query or fragment`,
      `write the API's base URL, e.g. ${example}`,
    );
  }
  const permitted = [...documented, ...allowed].map((u) => normalizeApiUrl(u) ?? u);
  if (permitted.includes(url)) return url;
  const hosts = documented.length > 0 ? `${type}'s documented API hosts (${documented.join(", ")})` : "no allowed URL";
  throw new FlagProviderError(
    "provider_refused",
    `${type} flags: flags.api_url: ${show(value)} is not one of ${hosts}; another host needs the operator's consent: FLAG_API_URLS=${type}=${url} on the API and the worker`,
    { details: { provider: type, field: "flags.api_url", value, documented } },
  );
}

/**
 * Parses `FLAG_API_URLS`: entries separated by commas or spaces, each
 * `<provider>=<http(s) URL>` (e.g. `unleash=https://unleash.internal/api`):
 * the API bases the operator allows besides the vendors' documented ones.
 *
 * @throws Error naming the malformed entry
 */
export function parseFlagApiUrls(text: string | undefined): Record<string, string[]> {
  const allowed: Record<string, string[]> = {};
  for (const entry of (text ?? "").split(/[\s,]+/u).filter((e) => e !== "")) {
    const at = entry.indexOf("=");
    const type = entry.slice(0, at);
    const url = normalizeApiUrl(entry.slice(at + 1));
    if (at <= 0 || !/^[a-z][a-z0-9_]*$/u.test(type) || url === undefined) {
      throw new Error(
        `FLAG_API_URLS: "${entry}" is not <provider>=<http(s) URL>; write e.g. unleash=https://unleash.internal/api`,
      );
    }
    allowed[type] = [...(allowed[type] ?? []), url];
  }
  return allowed;
}
