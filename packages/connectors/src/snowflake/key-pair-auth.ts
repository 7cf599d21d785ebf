/**
 * Snowflake key-pair authentication for the SQL API: a JWT signed (RS256)
 * with the user's private key, sent as `Authorization: Bearer <jwt>` with
 * `X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT`.
 *
 * The claims follow Snowflake's "Using key-pair authentication" of the SQL
 * API guide (docs.snowflake.com/en/developer-guide/sql-api/authenticating):
 * `iss` = `<ACCOUNT>.<USER>.SHA256:<fingerprint>`, `sub` = `<ACCOUNT>.<USER>`,
 * `iat`, and `exp` at most one hour later; the fingerprint is the base64 of
 * the SHA-256 of the public key's DER (SubjectPublicKeyInfo) encoding, as
 * `DESC USER` shows it in `RSA_PUBLIC_KEY_FP`. The account is upper-cased
 * and, for a `locator.region` identifier, cut at the first dot.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { SignJWT } from "jose";

/** How long a token is valid, in seconds: under Snowflake's one-hour maximum. */
const TOKEN_LIFETIME_SECONDS = 59 * 60;
/** A token this close to its expiry is replaced before use, in seconds. */
const TOKEN_RENEW_BEFORE_SECONDS = 5 * 60;
/** Snowflake requires RSA keys of at least 2048 bits. */
const MIN_RSA_BITS = 2048;

/** Why a private key cannot be used, and how to fix it (no part of the key, ever). */
export class PrivateKeyProblem extends Error {
  readonly fix: string;

  constructor(problem: string, fix: string) {
    super(problem);
    this.name = "PrivateKeyProblem";
    this.fix = fix;
  }
}

const MAKE_KEY =
  "make a key pair with `openssl genrsa 2048 | openssl pkcs8 -topk8 -inform PEM -out rsa_key.p8 -nocrypt`, then `openssl rsa -in rsa_key.p8 -pubout` and ALTER USER ... SET RSA_PUBLIC_KEY='...' (docs/connectors.md)";

/**
 * Loads a PEM private key in PKCS#8 form (`BEGIN PRIVATE KEY`, or
 * `BEGIN ENCRYPTED PRIVATE KEY` with `passphrase`), RSA of at least 2048 bits.
 *
 * @throws PrivateKeyProblem naming what is wrong (never the key) and the fix
 */
export function loadPrivateKey(pem: string, passphrase: string | undefined): KeyObject {
  const text = pem.trim();
  const encrypted = text.startsWith("-----BEGIN ENCRYPTED PRIVATE KEY-----");
  if (!encrypted && !text.startsWith("-----BEGIN PRIVATE KEY-----")) {
    const rsaHeader = text.startsWith("-----BEGIN RSA PRIVATE KEY-----");
    throw new PrivateKeyProblem(
      rsaHeader
        ? "is a PKCS#1 key (BEGIN RSA PRIVATE KEY), not PKCS#8"
        : "is not a PEM private key (it should start with -----BEGIN PRIVATE KEY----- or -----BEGIN ENCRYPTED PRIVATE KEY-----)",
      rsaHeader ? "convert it: `openssl pkcs8 -topk8 -inform PEM -in key.pem -out rsa_key.p8 -nocrypt`" : MAKE_KEY,
    );
  }
  if (encrypted && (passphrase === undefined || passphrase === "")) {
    throw new PrivateKeyProblem(
      "is encrypted, but no passphrase is given",
      "name the passphrase with private_key_passphrase_secret or private_key_passphrase_env",
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(encrypted ? { key: text, format: "pem", passphrase } : { key: text, format: "pem" });
  } catch {
    throw new PrivateKeyProblem(
      encrypted ? "cannot be decrypted with the passphrase given, or is damaged" : "cannot be read (damaged PEM)",
      encrypted ? "check private_key_passphrase; or store the key again" : MAKE_KEY,
    );
  }
  if (key.asymmetricKeyType !== "rsa") {
    throw new PrivateKeyProblem(
      `is a ${key.asymmetricKeyType ?? "non-RSA"} key; Snowflake key-pair authentication takes RSA keys`,
      MAKE_KEY,
    );
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) {
    throw new PrivateKeyProblem(`is a ${bits}-bit RSA key; Snowflake needs at least ${MIN_RSA_BITS} bits`, MAKE_KEY);
  }
  return key;
}

/**
 * `SHA256:<base64>`: the fingerprint of the public half of `privateKey`, in
 * the form Snowflake shows (`RSA_PUBLIC_KEY_FP`) and expects in `iss`.
 */
function publicKeyFingerprint(key: KeyObject): string {
  const der = createPublicKey(key).export({ type: "spki", format: "der" });
  return `SHA256:${createHash("sha256").update(der).digest("base64")}`;
}

/** The account as the JWT names it: upper case, without a `.region` suffix. */
function jwtAccount(account: string): string {
  const upper = account.toUpperCase();
  const dot = upper.indexOf(".");
  return dot === -1 ? upper : upper.slice(0, dot);
}

/** Signs and caches the key-pair JWT of one user. */
export class KeyPairAuth {
  private readonly issuer: string;
  private readonly subject: string;
  private readonly key: KeyObject;
  private cached: { token: string; expiresAt: number } | undefined;

  constructor(account: string, user: string, key: KeyObject) {
    this.subject = `${jwtAccount(account)}.${user.toUpperCase()}`;
    this.issuer = `${this.subject}.${publicKeyFingerprint(key)}`;
    this.key = key;
  }

  /** The headers that authenticate a SQL API request, with a token valid for at least five more minutes. */
  async headers(nowMs: number = Date.now()): Promise<Record<string, string>> {
    const now = Math.floor(nowMs / 1000);
    if (this.cached === undefined || this.cached.expiresAt - TOKEN_RENEW_BEFORE_SECONDS <= now) {
      const expiresAt = now + TOKEN_LIFETIME_SECONDS;
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: "RS256", typ: "JWT" })
        .setIssuer(this.issuer)
        .setSubject(this.subject)
        .setIssuedAt(now)
        .setExpirationTime(expiresAt)
        .sign(this.key);
      this.cached = { token, expiresAt };
    }
    return {
      Authorization: `Bearer ${this.cached.token}`,
      "X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT",
    };
  }
}
