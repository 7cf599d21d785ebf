/**
 * A mail catcher for tests and the demo: a real SMTP server in this process
 * (`smtp-server`), each accepted message parsed as a mail client would
 * (`mailparser`). Not for production: it keeps every message in memory.
 */
import type { AddressInfo } from "node:net";
import { type ParsedMail, simpleParser } from "mailparser";
import { SMTPServer } from "smtp-server";

export interface CaughtMail {
  readonly mail: ParsedMail;
  /** The envelope's recipients. */
  readonly to: readonly string[];
}

export interface MailCatcher {
  /** `smtp://127.0.0.1:<port>`, for SMTP_URL. */
  readonly url: string;
  readonly port: number;
  /** Messages accepted, in order of arrival. */
  readonly received: CaughtMail[];
  /** Messages refused with a temporary error (see `refuse`). */
  readonly refused: CaughtMail[];
  close(): Promise<void>;
}

export interface MailCatcherOptions {
  /** Refuse a message with a temporary 451 when this returns true (a mail server having a bad minute). */
  readonly refuse?: (message: CaughtMail) => boolean;
}

/** Start a catcher on 127.0.0.1 and a free port. */
export async function startMailCatcher(options: MailCatcherOptions = {}): Promise<MailCatcher> {
  const received: CaughtMail[] = [];
  const refused: CaughtMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream).then(
        (mail) => {
          const caught: CaughtMail = { mail, to: session.envelope.rcptTo.map((r) => r.address) };
          if (options.refuse?.(caught)) {
            refused.push(caught);
            callback(Object.assign(new Error("4.3.0 mail system busy, try later"), { responseCode: 451 }));
            return;
          }
          received.push(caught);
          callback();
        },
        (error: Error) => callback(error),
      );
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.server.address() as AddressInfo).port;
  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    received,
    refused,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
