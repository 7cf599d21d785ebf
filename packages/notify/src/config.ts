/**
 * Mail settings, parsed once at boot from the environment. Every error names the
 * variable, its value (with any password redacted) and how to fix it, so a
 * misconfigured deployment fails fast instead of silently dropping gate emails.
 */

/**
 * How gate emails leave the process:
 * - `smtp`: sent through the SMTP server of `SMTP_URL`;
 * - `log`: not sent, the decision links are written to the log (`MAIL_LOG_LINKS`),
 *   for people trying the product without a mail server;
 * - `disabled`: not sent at all; people decide in the dashboard.
 */
export type MailTransportMode = "smtp" | "log" | "disabled";

export interface MailConfig {
  readonly mode: MailTransportMode;
  /** The SMTP connection URL (`smtp://` or `smtps://`), with its password; null unless `mode` is `smtp`. */
  readonly smtpUrl: string | null;
  /** The From header, e.g. `Outcome Runtime <outcome-runtime@example.com>`. */
  readonly from: string;
  /** The absolute http(s) base URL links point to, without a trailing slash. */
  readonly publicUrl: string;
  /** Settings that work but that an operator should know about (log them at boot). */
  readonly warnings: readonly string[];
}

/** One malformed mail setting: the variable and a sentence naming its (redacted) value and the fix. */
export interface MailConfigProblem {
  readonly variable: string;
  readonly message: string;
}

/**
 * Thrown by {@link mailConfigFromEnv} when variables are invalid: `variable`
 * names the first, `problems` lists every one, one message line each.
 */
export class MailConfigError extends Error {
  readonly code = "mail_config_invalid";
  readonly variable: string;
  readonly problems: readonly MailConfigProblem[];

  constructor(variable: string, message: string, more: readonly MailConfigProblem[] = []) {
    const problems = [{ variable, message }, ...more];
    super(problems.map((p) => p.message).join("\n"));
    this.name = "MailConfigError";
    this.variable = variable;
    this.problems = problems;
  }
}

const DEFAULT_FROM = "Outcome Runtime <outcome-runtime@localhost>";
const DEFAULT_PUBLIC_URL = "http://localhost:8080";

/** Logged at every start in log mode: the links in the log are live credentials. */
export const LOG_MODE_WARNING =
  "MAIL_LOG_LINKS=true: gate emails are not sent; their decision links are written to the log, and anyone who can read the log can decide those gates; set SMTP_URL for real use";

export const LOG_MODE_PRODUCTION_WARNING =
  "MAIL_LOG_LINKS=true with NODE_ENV=production: decision links in logs let anyone who reads the logs decide gates; set SMTP_URL to send gate emails instead";

/**
 * Reads the mail settings from the environment.
 *
 * - `SMTP_URL`: `smtp://user:password@host:587` (STARTTLS when offered) or
 *   `smtps://…:465` (TLS from the start); when set, mode is `smtp`.
 * - `MAIL_LOG_LINKS`: `true`/`false`/`1`/`0` (default false); when true and no
 *   `SMTP_URL`, mode is `log`. Setting both is an error.
 * - `MAIL_FROM`: default `Outcome Runtime <outcome-runtime@localhost>`; must hold an address.
 * - `OUTCOME_RUNTIME_PUBLIC_URL`: default `http://localhost:8080`; an absolute
 *   http(s) URL without query or fragment, returned without trailing slash.
 * - mode `log` adds a warning to `warnings` (a stronger one with `NODE_ENV=production`):
 *   the decision links it logs are credentials.
 *
 * Empty values count as unset. Every variable is read whatever else is
 * wrong, so one error names them all.
 *
 * @throws MailConfigError naming each variable, its (redacted) value and the fix.
 */
export function mailConfigFromEnv(env: Readonly<Record<string, string | undefined>>): MailConfig {
  const problems: MailConfigProblem[] = [];
  /** `read()`, or `fallback` with its problem noted: a bad variable does not hide the next one. */
  const attempt = <T>(read: () => T, fallback: T): T => {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof MailConfigError)) throw error;
      problems.push(...error.problems);
      return fallback;
    }
  };
  const smtpUrl = attempt(() => parseSmtpUrl(value(env, "SMTP_URL")), null);
  const logLinks = attempt(() => parseBoolean("MAIL_LOG_LINKS", value(env, "MAIL_LOG_LINKS"), false), false);
  const from = attempt(() => parseFrom(value(env, "MAIL_FROM") ?? DEFAULT_FROM), DEFAULT_FROM);
  const publicUrl = attempt(
    () => parsePublicUrl(value(env, "OUTCOME_RUNTIME_PUBLIC_URL") ?? DEFAULT_PUBLIC_URL),
    DEFAULT_PUBLIC_URL,
  );

  if (smtpUrl !== null && logLinks) {
    problems.push({
      variable: "MAIL_LOG_LINKS",
      message:
        `MAIL_LOG_LINKS=true and SMTP_URL=${redactSmtpUrl(smtpUrl)} are both set: set one. ` +
        "Keep SMTP_URL to send gate emails, or unset it to write the decision links to the log instead.",
    });
  }
  const [first, ...rest] = problems;
  if (first !== undefined) throw new MailConfigError(first.variable, first.message, rest);
  const mode: MailTransportMode = smtpUrl !== null ? "smtp" : logLinks ? "log" : "disabled";
  const warnings: string[] = [];
  if (mode === "log") {
    warnings.push(value(env, "NODE_ENV") === "production" ? LOG_MODE_PRODUCTION_WARNING : LOG_MODE_WARNING);
  }
  return { mode, smtpUrl, from, publicUrl, warnings };
}

/**
 * `url` with the password of its user info replaced by `***`, for logs and
 * errors: `smtp://user:secret@host:587` → `smtp://user:***@host:587`. Works on
 * strings that are not valid URLs too, and errs towards hiding more: everything
 * between the first `:` after the scheme and the last `@` is replaced.
 */
export function redactSmtpUrl(url: string): string {
  const schemeEnd = url.indexOf("://");
  const authorityStart = schemeEnd === -1 ? 0 : schemeEnd + 3;
  const at = url.lastIndexOf("@");
  if (at < authorityStart) return url;
  const colon = url.indexOf(":", authorityStart);
  if (colon === -1 || colon > at) return url;
  return `${url.slice(0, colon + 1)}***${url.slice(at)}`;
}

function value(env: Readonly<Record<string, string | undefined>>, name: string): string | null {
  const raw = env[name]?.trim();
  return raw === undefined || raw === "" ? null : raw;
}

function parseSmtpUrl(raw: string | null): string | null {
  if (raw === null) return null;
  const fix =
    "Set it to smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465 (TLS), " +
    "percent-encoding special characters in the user and password (@ as %40, : as %3A, / as %2F), or unset it.";
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new MailConfigError("SMTP_URL", `SMTP_URL=${redactSmtpUrl(raw)} is not a valid URL. ${fix}`);
  }
  if (url.protocol !== "smtp:" && url.protocol !== "smtps:") {
    throw new MailConfigError(
      "SMTP_URL",
      `SMTP_URL=${redactSmtpUrl(raw)} has the scheme ${url.protocol.replace(/:$/, "")}; only smtp and smtps are supported. ${fix}`,
    );
  }
  if (url.hostname === "") {
    throw new MailConfigError("SMTP_URL", `SMTP_URL=${redactSmtpUrl(raw)} names no host. ${fix}`);
  }
  return raw;
}

function parseBoolean(name: string, raw: string | null, fallback: boolean): boolean {
  if (raw === null) return fallback;
  switch (raw.toLowerCase()) {
    case "true":
    case "1":
      return true;
    case "false":
    case "0":
      return false;
    default:
      throw new MailConfigError(name, `${name}=${raw} is not a boolean. Set it to true, false, 1 or 0, or unset it.`);
  }
}

// `Name <local@domain>` or `local@domain`; no line breaks, which would let the
// value inject headers.
const FROM_PATTERN = /^(?:[^<>\r\n]*<[^<>\s@]+@[^<>\s@]+>|[^<>\s@]+@[^<>\s@]+)$/;

function parseFrom(raw: string): string {
  if (!FROM_PATTERN.test(raw)) {
    throw new MailConfigError(
      "MAIL_FROM",
      `MAIL_FROM=${JSON.stringify(raw)} holds no email address. ` +
        'Set it to an address such as outcome-runtime@example.com or "Outcome Runtime <outcome-runtime@example.com>", or unset it.',
    );
  }
  return raw;
}

function parsePublicUrl(raw: string): string {
  const fix =
    "Set it to the absolute http(s) URL people reach the dashboard at, e.g. https://outcomes.example.com, or unset it.";
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new MailConfigError(
      "OUTCOME_RUNTIME_PUBLIC_URL",
      `OUTCOME_RUNTIME_PUBLIC_URL=${redactSmtpUrl(raw)} is not an absolute URL. ${fix}`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new MailConfigError(
      "OUTCOME_RUNTIME_PUBLIC_URL",
      `OUTCOME_RUNTIME_PUBLIC_URL=${redactSmtpUrl(raw)} is not an http or https URL. ${fix}`,
    );
  }
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    throw new MailConfigError(
      "OUTCOME_RUNTIME_PUBLIC_URL",
      `OUTCOME_RUNTIME_PUBLIC_URL=${redactSmtpUrl(raw)} has credentials, a query or a fragment; links are built by appending paths to it. ${fix}`,
    );
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, "");
}
