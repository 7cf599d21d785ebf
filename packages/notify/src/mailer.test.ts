/**
 * The mailer against a real SMTP server (smtp-server, in process, on a free
 * port): what arrives is parsed back with mailparser, as a mail client would.
 */
import type { AddressInfo } from "node:net";
import { type ParsedMail, simpleParser } from "mailparser";
import { SMTPServer, type SMTPServerOptions } from "smtp-server";
import { afterEach, describe, expect, it } from "vitest";
import { type MailConfig, mailConfigFromEnv } from "./config";
import { createMailer, LOG_MODE_MESSAGE, type MailMessage, MailSendError } from "./mailer";

interface TestServer {
  readonly port: number;
  readonly received: ParsedMail[];
  readonly logins: { username: string; password: string }[];
  close(): Promise<void>;
}

const servers: TestServer[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

/** Starts an SMTP server on 127.0.0.1 and a free port that parses and keeps every message it accepts. */
async function startServer(options: Partial<SMTPServerOptions> = {}): Promise<TestServer> {
  const received: ParsedMail[] = [];
  const logins: { username: string; password: string }[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    allowInsecureAuth: true,
    logger: false,
    onAuth(auth, _session, callback) {
      logins.push({ username: auth.username ?? "", password: auth.password ?? "" });
      callback(null, { user: auth.username });
    },
    onData(stream, _session, callback) {
      simpleParser(stream).then(
        (mail) => {
          received.push(mail);
          callback();
        },
        (error: Error) => callback(error),
      );
    },
    ...options,
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const test: TestServer = {
    port: (server.server.address() as AddressInfo).port,
    received,
    logins,
    close: () => new Promise<void>((resolve) => server.close(resolve)),
  };
  servers.push(test);
  return test;
}

const message: MailMessage = {
  to: "pm@example.com",
  subject: '[Outcome Runtime] Decision needed: portfolio review for "Checkout conversion"',
  html: '<p>Decide: <a href="https://outcomes.example.com/email-decisions/tok_1">Approve</a></p>',
  text: "Decide: https://outcomes.example.com/email-decisions/tok_1\n",
  messageId: "<notification-n1@outcome-runtime>",
  links: [{ label: "Approve", url: "https://outcomes.example.com/email-decisions/tok_1" }],
  headers: { "X-Outcome-Runtime-Gate": "gate_1" },
};

function smtpConfig(url: string): MailConfig {
  return mailConfigFromEnv({ SMTP_URL: url, MAIL_FROM: "Acme Gates <gates@example.com>" });
}

describe("createMailer in smtp mode", () => {
  it("delivers the message with its Message-ID and the auto-generated headers", async () => {
    const server = await startServer();
    const mailer = createMailer(smtpConfig(`smtp://127.0.0.1:${server.port}`));
    try {
      expect(mailer.mode).toBe("smtp");
      await mailer.verify();
      const result = await mailer.send(message);
      expect(result).toEqual({
        status: "sent",
        messageId: "<notification-n1@outcome-runtime>",
        accepted: ["pm@example.com"],
      });
    } finally {
      mailer.close();
    }
    expect(server.received).toHaveLength(1);
    const mail = server.received[0]!;
    expect(mail.from?.value).toEqual([{ address: "gates@example.com", name: "Acme Gates" }]);
    expect(mail.from?.text).toBe('"Acme Gates" <gates@example.com>');
    const to = Array.isArray(mail.to) ? mail.to : [mail.to];
    expect(to.flatMap((t) => t?.value.map((a) => a.address))).toEqual(["pm@example.com"]);
    expect(mail.subject).toBe(message.subject);
    expect(mail.html).toBe(message.html);
    expect(mail.text).toBe(message.text);
    expect(mail.messageId).toBe("<notification-n1@outcome-runtime>");
    expect(mail.headers.get("auto-submitted")).toBe("auto-generated");
    expect(mail.headers.get("x-auto-response-suppress")).toBe("All");
    expect(mail.headers.get("x-outcome-runtime-gate")).toBe("gate_1");
  });

  it("keeps Auto-Submitted even when the caller's headers try to override it", async () => {
    const server = await startServer();
    const mailer = createMailer(smtpConfig(`smtp://127.0.0.1:${server.port}`));
    try {
      await mailer.send({ ...message, headers: { "Auto-Submitted": "no" } });
    } finally {
      mailer.close();
    }
    expect(server.received[0]?.headers.get("auto-submitted")).toBe("auto-generated");
  });

  it("logs in with the credentials of the URL", async () => {
    const server = await startServer();
    const mailer = createMailer(smtpConfig(`smtp://gates:s3cr%40t@127.0.0.1:${server.port}`));
    try {
      const result = await mailer.send(message);
      expect(result.status).toBe("sent");
    } finally {
      mailer.close();
    }
    expect(server.logins).toEqual([{ username: "gates", password: "s3cr@t" }]);
    expect(server.received).toHaveLength(1);
  });

  it("rejects with a MailSendError naming the redacted URL and the server's response when the recipient is refused", async () => {
    const server = await startServer({
      onRcptTo(_address, _session, callback) {
        callback(Object.assign(new Error("mailbox unavailable"), { responseCode: 550 }));
      },
    });
    const url = `smtp://gates:hunter2@127.0.0.1:${server.port}`;
    const mailer = createMailer(smtpConfig(url));
    try {
      const error = await mailer.send(message).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(MailSendError);
      const sendError = error as MailSendError;
      expect(sendError.message).toContain(`smtp://gates:***@127.0.0.1:${server.port}`);
      expect(sendError.message).toContain("550");
      expect(sendError.message).toContain("mailbox unavailable");
      expect(sendError.message).not.toContain("hunter2");
      expect(sendError.code).toBe("mail_send_failed");
      expect(sendError.responseCode).toBe(550);
      expect(sendError.permanent).toBe(true);
      expect(sendError.cause).toBeInstanceOf(Error);
    } finally {
      mailer.close();
    }
    expect(server.received).toHaveLength(0);
  });

  it("rejects with a transient MailSendError when no server listens", async () => {
    const server = await startServer();
    const port = server.port;
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    const mailer = createMailer(smtpConfig(`smtp://gates:hunter2@127.0.0.1:${port}`));
    try {
      const error = await mailer.send(message).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(MailSendError);
      const sendError = error as MailSendError;
      expect(sendError.message).toContain(`sending mail through smtp://gates:***@127.0.0.1:${port} failed`);
      expect(sendError.message).not.toContain("hunter2");
      expect(sendError.responseCode).toBeNull();
      expect(sendError.permanent).toBe(false);
      await expect(mailer.verify()).rejects.toThrow(/verifying the SMTP connection through smtp:\/\/gates:\*\*\*@/);
    } finally {
      mailer.close();
    }
  });

  it("gives up on a server that never greets after the configured timeout", async () => {
    const { createServer } = await import("node:net");
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as AddressInfo).port;
    const mailer = createMailer(smtpConfig(`smtp://127.0.0.1:${port}`), undefined, {
      transportOptions: { greetingTimeout: 200 },
    });
    try {
      const started = Date.now();
      await expect(mailer.send(message)).rejects.toThrow(MailSendError);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      mailer.close();
      silent.close();
    }
  });
});

describe("createMailer in log mode", () => {
  it("logs the recipient, subject and links and sends nothing", async () => {
    const server = await startServer();
    const calls: { fields: Record<string, unknown>; message: string }[] = [];
    // An SMTP URL in a log-mode config must not be used: the mode decides.
    const config: MailConfig = {
      ...mailConfigFromEnv({ MAIL_LOG_LINKS: "true" }),
      smtpUrl: `smtp://127.0.0.1:${server.port}`,
    };
    const mailer = createMailer(config, (fields, msg) => calls.push({ fields, message: msg }));
    expect(mailer.mode).toBe("log");
    await mailer.verify();
    expect(await mailer.send(message)).toEqual({ status: "logged" });
    mailer.close();
    expect(calls).toEqual([
      {
        fields: { to: "pm@example.com", subject: message.subject, links: message.links },
        message: LOG_MODE_MESSAGE,
      },
    ]);
    expect(LOG_MODE_MESSAGE).toBe("mail not sent (MAIL_LOG_LINKS): decision links");
    expect(server.received).toHaveLength(0);
  });

  it("logs an empty link list for a message without links", async () => {
    const calls: Record<string, unknown>[] = [];
    const mailer = createMailer(mailConfigFromEnv({ MAIL_LOG_LINKS: "1" }), (fields) => calls.push(fields));
    await mailer.send({ ...message, links: undefined });
    expect(calls).toEqual([{ to: "pm@example.com", subject: message.subject, links: [] }]);
  });
});

describe("createMailer in disabled mode", () => {
  it("sends nothing, logs nothing and says so", async () => {
    const calls: unknown[] = [];
    const mailer = createMailer(mailConfigFromEnv({}), (fields) => calls.push(fields));
    expect(mailer.mode).toBe("disabled");
    await mailer.verify();
    expect(await mailer.send(message)).toEqual({ status: "disabled" });
    mailer.close();
    expect(calls).toEqual([]);
  });
});

describe("createMailer with an inconsistent config", () => {
  it("refuses smtp mode without an SMTP URL", () => {
    expect(() => createMailer({ ...mailConfigFromEnv({}), mode: "smtp" })).toThrow(/set SMTP_URL/);
  });
});
