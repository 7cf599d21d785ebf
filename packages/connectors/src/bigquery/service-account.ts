/**
 * A Google service account's JSON key, checked before anything is sent, and
 * the access token it gets: the OAuth 2.0 JWT bearer grant (RFC 7523) that
 * Google documents for service accounts
 * (https://developers.google.com/identity/protocols/oauth2/service-account#httprest):
 * a JWT signed with the key's RS256 private key, claims `iss` (the account's
 * email), `scope`, `aud` (the token endpoint), `iat` and `exp` (at most an
 * hour later), POSTed as `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`
 * to the key's `token_uri`; the answer is `{ access_token, expires_in, token_type }`,
 * an error `{ error, error_description }` with 400 or 401.
 *
 * Why the grant is made here and not by google-auth-library: a key's
 * `token_uri` says where the signed JWT goes, and a signed JWT is as good as
 * the key for an hour (whoever holds it can redeem it at Google). So the URL
 * must be Google's (`https://oauth2.googleapis.com/token`) unless the
 * operator allowed another (`SOURCE_API_URLS`, like `api_endpoint`): a
 * workspace member who can set a secret must not be able to send the key's
 * assertions to a host of their choosing. google-auth-library 10.9.1 (the
 * version `@google-cloud/bigquery` 8.3.1 uses) posts every JWT grant to a
 * fixed `https://oauth2.googleapis.com/token` (`gtoken/getToken.js`),
 * whatever the key says: it cannot be pointed at a proxy or at the tests'
 * fake, and it would silently ignore a key meant for another endpoint. The
 * grant below goes to the checked `token_uri`, through the outbound guard, and
 * is handed to the BigQuery client as an `OAuth2Client` whose
 * `refreshHandler` returns it (google-auth-library then caches the token and
 * asks again five minutes before it expires).
 */
import { createPrivateKey, createSign, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { OutboundBlockedError } from "@outcome-runtime/netguard";
import { OAuth2Client } from "google-auth-library";
import { show } from "../config-reader";
import { ConnectorError } from "../connector-error";
import { normalizeApiUrl } from "../vendor-hosts";

/** Google's OAuth 2.0 token endpoint, the `token_uri` of every key Google issues. */
export const GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token";

/** The scope the token is asked for (the BigQuery client's own, `@google-cloud/bigquery` `bigquery.js`). */
const BIGQUERY_SCOPE = "https://www.googleapis.com/auth/bigquery";

/** The JWT bearer grant type (RFC 7523, section 2.1). */
const JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/** A JWT's lifetime, in seconds: Google accepts at most an hour. */
const ASSERTION_LIFETIME_SECONDS = 3600;

/** How long one token request may take, ms. */
const TOKEN_TIMEOUT_MS = 30_000;

/** The largest token answer read, in bytes: a real one is about 1 kB. */
const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;

/** A checked service account key. Never logged, never in a message. */
export interface ServiceAccountKey {
  /** The connector type the key is for, in messages (`bigquery`, `ga4`). */
  readonly connector: string;
  readonly clientEmail: string;
  readonly privateKey: KeyObject;
  readonly privateKeyId: string | undefined;
  /** The token endpoint, one of the allowed ones, normalised. */
  readonly tokenUrl: string;
}

/** Where the key came from, for messages: the setting and the secret's or variable's name; never the key. */
export interface KeyOrigin {
  /** `credentials_json_secret`, `credentials_json_env` or `credentials_file_env`. */
  readonly field: string;
  /** The secret's or the variable's name. */
  readonly name: string;
  /** For `credentials_file_env`: the file's path (the variable's value). */
  readonly path?: string;
  /** The connector type, in messages and in the `SOURCE_API_URLS` hint (default `bigquery`). */
  readonly connector?: string;
}

function describeOrigin(origin: KeyOrigin): string {
  if (origin.path !== undefined) return `the key file ${show(origin.path)} (${origin.field}: ${origin.name})`;
  return `the key in ${origin.field}: ${origin.name}`;
}

function invalidKey(origin: KeyOrigin, problem: string, fix: string): ConnectorError {
  const connector = origin.connector ?? "bigquery";
  return new ConnectorError("invalid_config", `${connector} connector: ${origin.field}: ${problem}; ${fix}`, {
    details: { connector, field: origin.field, name: origin.name, problem, fix },
  });
}

/**
 * Reads the key file named by `credentials_file_env` (read at each token
 * request, so a rotated file is picked up without a restart).
 *
 * @throws ConnectorError `invalid_config` when the file cannot be read
 */
export async function readKeyFile(origin: KeyOrigin & { readonly path: string }): Promise<string> {
  try {
    return await readFile(origin.path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw invalidKey(
      origin,
      `the key file ${show(origin.path)} cannot be read (${code ?? (error instanceof Error ? error.message : String(error))})`,
      `set ${origin.name} on the API and the worker to the absolute path of the service account's JSON key file, readable by their user`,
    );
  }
}

/**
 * Parses and checks a service account key: JSON, `type: service_account`,
 * `client_email`, an RSA `private_key` in PEM, and a `token_uri` that is
 * Google's or one the operator allows.
 *
 * @param allowedTokenUrls token endpoints the operator allows besides Google's (`SOURCE_API_URLS` for `bigquery`)
 * @throws ConnectorError `invalid_config` naming the field of the key that is wrong (never its value);
 *   `source_refused` for a `token_uri` that is not allowed
 */
export function parseServiceAccountKey(
  text: string,
  origin: KeyOrigin,
  allowedTokenUrls: readonly string[] = [],
): ServiceAccountKey {
  const where = describeOrigin(origin);
  const connector = origin.connector ?? "bigquery";
  const howTo =
    "create a key for the service account (IAM → Service accounts → Keys → Add key → JSON) and store the whole file";
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    const trimmed = text.trim();
    const looksLikePath = origin.path === undefined && /^(?:\/|[A-Za-z]:\\|~\/|\.\/)\S*$/u.test(trimmed);
    throw invalidKey(
      origin,
      `${where} is not JSON`,
      looksLikePath
        ? "it looks like a file path: name a variable holding the path with credentials_file_env instead, or store the file's contents"
        : howTo,
    );
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw invalidKey(origin, `${where} is not a JSON object`, howTo);
  }
  const key = parsed as Record<string, unknown>;
  if (key.type !== "service_account") {
    const kind = typeof key.type === "string" ? `a ${show(key.type)} credential` : "a JSON object without a type";
    throw invalidKey(
      origin,
      `${where} is ${kind}, not a service account key (type "service_account")`,
      key.type === "authorized_user"
        ? "a user's gcloud login cannot be used; create a service account with the roles docs/connectors.md lists and use one of its keys"
        : `use a service account key; ${howTo}`,
    );
  }
  const email = key.client_email;
  if (typeof email !== "string" || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/u.test(email)) {
    throw invalidKey(
      origin,
      `${where} has no valid client_email`,
      `the key file's client_email is the service account's address; ${howTo}`,
    );
  }
  const pem = key.private_key;
  let privateKey: KeyObject | undefined;
  if (typeof pem === "string" && pem.includes("PRIVATE KEY")) {
    try {
      privateKey = createPrivateKey({ key: pem, format: "pem" });
    } catch {
      privateKey = undefined;
    }
  }
  if (privateKey === undefined || privateKey.asymmetricKeyType !== "rsa") {
    throw invalidKey(
      origin,
      `${where} has no usable private_key (an RSA key in PEM, as in the file Google gives)`,
      `store the key file exactly as downloaded (its private_key keeps its \\n line breaks); ${howTo}`,
    );
  }
  const universe = key.universe_domain;
  if (universe !== undefined && universe !== "googleapis.com") {
    throw invalidKey(
      origin,
      `${where} belongs to the universe ${show(universe)}, not googleapis.com`,
      "use a key of a service account of Google Cloud (universe_domain googleapis.com)",
    );
  }
  if (typeof key.token_uri !== "string" || key.token_uri.trim() === "") {
    throw invalidKey(
      origin,
      `${where} has no token_uri`,
      `a key file names Google's token endpoint, ${GOOGLE_TOKEN_URL}; ${howTo}`,
    );
  }
  const tokenUrl = normalizeApiUrl(key.token_uri);
  const permitted = [GOOGLE_TOKEN_URL, ...allowedTokenUrls].map((u) => normalizeApiUrl(u) ?? u);
  if (tokenUrl === undefined || !permitted.includes(tokenUrl)) {
    const problem = `${where} has the token_uri ${show(key.token_uri)}, not Google's token endpoint (${GOOGLE_TOKEN_URL}): the JWT signed with the key, as good as the key for an hour, would be sent there`;
    const fix =
      tokenUrl === undefined
        ? `use a key Google issued, whose token_uri is ${GOOGLE_TOKEN_URL}`
        : `use a key Google issued (token_uri ${GOOGLE_TOKEN_URL}); another token endpoint needs the operator's consent: SOURCE_API_URLS=${connector}=${tokenUrl} on the API and the worker`;
    throw new ConnectorError("source_refused", `${connector} connector: ${origin.field}: ${problem}; ${fix}`, {
      details: { connector, field: origin.field, name: origin.name, tokenUri: key.token_uri, problem, fix },
    });
  }
  const keyId = typeof key.private_key_id === "string" && key.private_key_id !== "" ? key.private_key_id : undefined;
  return { connector, clientEmail: email, privateKey, privateKeyId: keyId, tokenUrl };
}

/** An access token and when it expires (ms since the epoch). */
export interface AccessToken {
  readonly accessToken: string;
  readonly expiresAt: number;
}

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString("base64url");
}

/** The signed JWT of the grant (RS256), for `scope`, addressed to the key's token endpoint. */
function signAssertion(key: ServiceAccountKey, scope: string, nowMs: number = Date.now()): string {
  const iat = Math.floor(nowMs / 1000);
  const header = { alg: "RS256", typ: "JWT", ...(key.privateKeyId === undefined ? {} : { kid: key.privateKeyId }) };
  const claims = { iss: key.clientEmail, scope, aud: key.tokenUrl, iat, exp: iat + ASSERTION_LIFETIME_SECONDS };
  const unsigned = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = createSign("RSA-SHA256").update(unsigned).sign(key.privateKey);
  return `${unsigned}.${base64url(signature)}`;
}

/**
 * Exchanges the key for an access token at its `token_uri`.
 *
 * @param fetchFn the transport (held to the outbound policy by the caller)
 * @throws ConnectorError `auth_failed` (the endpoint refused the key), `rate_limited`, `unavailable`,
 *   `timeout`, `invalid_config` (the outbound guard refused the endpoint), `bad_response`
 */
export async function fetchAccessToken(
  key: ServiceAccountKey,
  fetchFn: typeof fetch,
  scope: string = BIGQUERY_SCOPE,
): Promise<AccessToken> {
  const host = URL.canParse(key.tokenUrl) ? new URL(key.tokenUrl).host : key.tokenUrl;
  const body = new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion: signAssertion(key, scope) });
  const timeout = AbortSignal.timeout(TOKEN_TIMEOUT_MS);
  let response: Response;
  let text: string;
  try {
    response = await fetchFn(key.tokenUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: body.toString(),
      signal: timeout,
    });
    text = await response.text();
  } catch (error) {
    if (error instanceof OutboundBlockedError) {
      throw new ConnectorError("invalid_config", `${key.connector} token endpoint: ${error.message}`, {
        details: { url: error.url, address: error.address },
        cause: error,
      });
    }
    if (timeout.aborted) {
      throw new ConnectorError(
        "timeout",
        `${key.connector}: the token endpoint ${host} did not answer within ${TOKEN_TIMEOUT_MS / 1000}s; the poll will be retried`,
        { cause: error },
      );
    }
    throw new ConnectorError(
      "unavailable",
      `${key.connector}: cannot reach the token endpoint ${host} (${error instanceof Error ? error.message : String(error)}); the poll will be retried`,
      { cause: error },
    );
  }
  if (text.length > MAX_TOKEN_RESPONSE_BYTES) {
    throw new ConnectorError(
      "bad_response",
      `${key.connector}: the token endpoint ${host} answered ${text.length} bytes, not a token`,
    );
  }
  let answer: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === "object") answer = parsed as Record<string, unknown>;
  } catch {
    // Not JSON: the status says what happened.
  }
  if (response.status === 429) {
    const seconds = Number(response.headers.get("retry-after"));
    throw new ConnectorError("rate_limited", `${key.connector}: the token endpoint ${host} is throttling (429)`, {
      retryAfterMs: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : null,
    });
  }
  if (response.status >= 500) {
    throw new ConnectorError(
      "unavailable",
      `${key.connector}: the token endpoint ${host} failed (${response.status}); the poll will be retried`,
      { details: { status: response.status } },
    );
  }
  if (!response.ok) {
    const code = typeof answer.error === "string" ? answer.error : `HTTP ${response.status}`;
    const description = typeof answer.error_description === "string" ? `: ${answer.error_description}` : "";
    throw new ConnectorError(
      "auth_failed",
      `${key.connector}: the token endpoint refused the service account key of ${key.clientEmail} (${code}${description}); check the key was not deleted or disabled, and that the service account exists, or create a new key`,
      { details: { status: response.status, error: code, serviceAccount: key.clientEmail } },
    );
  }
  const token = answer.access_token;
  const expiresIn = Number(answer.expires_in);
  if (typeof token !== "string" || token === "" || !Number.isFinite(expiresIn) || expiresIn <= 0) {
    throw new ConnectorError(
      "bad_response",
      `${key.connector}: the token endpoint ${host} answered without an access_token and expires_in`,
      { details: { status: response.status } },
    );
  }
  return { accessToken: token, expiresAt: Date.now() + expiresIn * 1000 };
}

/**
 * The auth client the BigQuery client uses: google-auth-library's
 * `OAuth2Client`, whose documented `refreshHandler` hook returns the token
 * `token()` gets. The client keeps the token and calls the handler again
 * when it is about to expire.
 */
export function tokenAuthClient(token: () => Promise<AccessToken>): OAuth2Client {
  const client = new OAuth2Client();
  client.refreshHandler = async () => {
    const fresh = await token();
    return { access_token: fresh.accessToken, expiry_date: fresh.expiresAt };
  };
  return client;
}
