/**
 * Sends gate emails through SMTP, writes their links to the log, or drops them,
 * as the {@link MailConfig} says. Retrying is the caller's job (a queue job with
 * backoff): `send` sends once and throws what went wrong.
 */
import nodemailer, { type NodemailerError, type SMTPTransportOptions } from "nodemailer";
import { type MailConfig, type MailTransportMode, redactSmtpUrl } from "./config";

export interface MailMessage {
  /** One recipient address. */
  readonly to: string;
  readonly subject: string;
  readonly html: string;
  readonly text: string;
  /** RFC 5322 Message-ID to use, e.g. `<notification-id@outcome-runtime>`, so a resend is recognisable */
  readonly messageId?: string;
  /** The decision links in the message, for log mode */
  readonly links?: readonly { label: string; url: string }[];
  /** Extra headers; `Auto-Submitted` and `X-Auto-Response-Suppress` are always set and cannot be overridden. */
  readonly headers?: Readonly<Record<string, string>>;
}

export type SendResult =
  | { readonly status: "sent"; readonly messageId: string; readonly accepted: readonly string[] }
  | { readonly status: "logged" }
  | { readonly status: "disabled" };

export interface Mailer {
  readonly mode: MailTransportMode;
  /**
   * Sends one message (smtp), logs its links (log) or does nothing (disabled).
   * @throws MailSendError when the SMTP server cannot be reached or refuses the message.
   */
  send(message: MailMessage): Promise<SendResult>;
  /**
   * Checks the SMTP server accepts a connection (and the login); resolves at once in log and disabled modes.
   * @throws MailSendError when it does not.
   */
  verify(): Promise<void>;
  /** Closes the SMTP connections; the mailer must not be used afterwards. */
  close(): void;
}

/** Structured log function, pino-style: `log(fields, message)`. */
export type MailLog = (fields: Record<string, unknown>, message: string) => void;

export interface MailerOptions {
  /**
   * Extra nodemailer SMTP transport options merged under the URL's settings,
   * e.g. `{ tls: { rejectUnauthorized: false } }` in tests, or other timeouts
   * (milliseconds; defaults: connect 10 s, greeting 10 s, idle socket 30 s).
   */
  readonly transportOptions?: SMTPTransportOptions;
}

/**
 * An SMTP send or verify failed. The message names the redacted SMTP URL and the
 * server's response when there was one; the password never appears.
 */
export class MailSendError extends Error {
  readonly code = "mail_send_failed";
  /** The SMTP reply code (e.g. 550), or null when the server never replied (connection failure). */
  readonly responseCode: number | null;
  /** True when the server refused for good (5xx): sending the same message again will fail again. */
  readonly permanent: boolean;

  constructor(message: string, cause: NodemailerError) {
    super(message, { cause });
    this.name = "MailSendError";
    this.responseCode = cause.responseCode ?? null;
    this.permanent = cause.permanent ?? false;
  }
}

export const LOG_MODE_MESSAGE = "mail not sent (MAIL_LOG_LINKS): decision links";

// Nodemailer waits minutes by default; a worker job should fail fast and retry.
const DEFAULT_TIMEOUTS = { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 } as const;

// RFC 3834: the message is machine-generated, so auto-responders stay quiet; the
// Microsoft header does the same for Exchange and Outlook.
const AUTOMATED_HEADERS = { "Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All" } as const;

const defaultLog: MailLog = (fields, message) => {
  process.stderr.write(`${JSON.stringify({ level: "info", msg: message, ...fields })}\n`);
};

/**
 * Creates the mailer for `config.mode`:
 * - `smtp`: `send` delivers through `config.smtpUrl` from `config.from` and
 *   resolves `{ status: "sent", messageId, accepted }`;
 * - `log`: `send` calls `log({ to, subject, links }, "mail not sent (MAIL_LOG_LINKS): decision links")`
 *   and resolves `{ status: "logged" }`; nothing is sent;
 * - `disabled`: `send` resolves `{ status: "disabled" }`.
 *
 * `log` defaults to a JSON line on stderr. Creating the mailer opens no connection.
 *
 * @throws Error when `config.mode` is `smtp` without an `smtpUrl` (a config not made by `mailConfigFromEnv`).
 */
export function createMailer(config: MailConfig, log: MailLog = defaultLog, options: MailerOptions = {}): Mailer {
  switch (config.mode) {
    case "smtp":
      if (config.smtpUrl === null) throw new Error("mail mode smtp needs an SMTP URL (set SMTP_URL)");
      return smtpMailer(config.smtpUrl, config.from, options);
    case "log":
      return {
        mode: "log",
        send: async (message) => {
          log({ to: message.to, subject: message.subject, links: message.links ?? [] }, LOG_MODE_MESSAGE);
          return { status: "logged" };
        },
        verify: async () => {},
        close: () => {},
      };
    case "disabled":
      return {
        mode: "disabled",
        send: async () => ({ status: "disabled" }),
        verify: async () => {},
        close: () => {},
      };
  }
}

function smtpMailer(smtpUrl: string, from: string, options: MailerOptions): Mailer {
  const transport = nodemailer.createTransport({
    ...DEFAULT_TIMEOUTS,
    ...options.transportOptions,
    url: smtpUrl,
  });
  const fail = (action: string, error: unknown): MailSendError => {
    const err = (error instanceof Error ? error : new Error(String(error))) as NodemailerError;
    const response = err.response && !err.message.includes(err.response) ? ` (SMTP response: ${err.response})` : "";
    const message = `${action} through ${redactSmtpUrl(smtpUrl)} failed: ${err.message}${response}`;
    return new MailSendError(scrubPassword(message, smtpUrl), err);
  };
  return {
    mode: "smtp",
    async send(message) {
      try {
        const info = await transport.sendMail({
          from,
          to: message.to,
          subject: message.subject,
          html: message.html,
          text: message.text,
          ...(message.messageId === undefined ? {} : { messageId: message.messageId }),
          headers: { ...message.headers, ...AUTOMATED_HEADERS },
        });
        return { status: "sent", messageId: info.messageId, accepted: info.accepted.map(String) };
      } catch (error) {
        throw fail("sending mail", error);
      }
    },
    async verify() {
      try {
        await transport.verify();
      } catch (error) {
        throw fail("verifying the SMTP connection", error);
      }
    },
    close() {
      transport.close();
    },
  };
}

// A server may echo the login back in its reply; never let the password reach a log.
function scrubPassword(text: string, smtpUrl: string): string {
  let password: string;
  try {
    password = new URL(smtpUrl).password;
  } catch {
    return text;
  }
  if (password === "") return text;
  let decoded = password;
  try {
    decoded = decodeURIComponent(password);
  } catch {
    // keep the encoded form
  }
  return [password, decoded].reduce((out, secret) => out.replaceAll(secret, "***"), text);
}
