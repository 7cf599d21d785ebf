import { describe, expect, it } from "vitest";
import {
  LOG_MODE_PRODUCTION_WARNING,
  LOG_MODE_WARNING,
  MailConfigError,
  mailConfigFromEnv,
  redactSmtpUrl,
} from "./config";

/** The MailConfigError `mailConfigFromEnv(env)` throws; fails the test when it does not throw one. */
function configError(env: Record<string, string | undefined>): MailConfigError {
  try {
    mailConfigFromEnv(env);
  } catch (error) {
    expect(error).toBeInstanceOf(MailConfigError);
    return error as MailConfigError;
  }
  throw new Error(`expected a MailConfigError for ${JSON.stringify(env)}`);
}

describe("mailConfigFromEnv", () => {
  it("is disabled with the defaults when nothing is set", () => {
    expect(mailConfigFromEnv({})).toEqual({
      mode: "disabled",
      smtpUrl: null,
      from: "Outcome Runtime <outcome-runtime@localhost>",
      publicUrl: "http://localhost:8080",
      warnings: [],
    });
  });

  it("treats empty values as unset", () => {
    const config = mailConfigFromEnv({
      SMTP_URL: "",
      MAIL_LOG_LINKS: " ",
      MAIL_FROM: "",
      OUTCOME_RUNTIME_PUBLIC_URL: "",
    });
    expect(config.mode).toBe("disabled");
    expect(config.from).toBe("Outcome Runtime <outcome-runtime@localhost>");
    expect(config.publicUrl).toBe("http://localhost:8080");
  });

  it("sends through SMTP when SMTP_URL is an smtp or smtps URL", () => {
    const smtp = mailConfigFromEnv({ SMTP_URL: "smtp://user:pass@mail.example.com:587" });
    expect(smtp.mode).toBe("smtp");
    expect(smtp.smtpUrl).toBe("smtp://user:pass@mail.example.com:587");
    const smtps = mailConfigFromEnv({ SMTP_URL: "smtps://user:pass@mail.example.com:465" });
    expect(smtps.mode).toBe("smtp");
    expect(smtps.smtpUrl).toBe("smtps://user:pass@mail.example.com:465");
  });

  it.each([
    ["http://user:hunter2@mail.example.com", "http"],
    ["ftp://user:hunter2@mail.example.com", "ftp"],
  ])("refuses SMTP_URL=%s naming the variable, the scheme and the fix, without the password", (url, scheme) => {
    const error = configError({ SMTP_URL: url });
    expect(error.variable).toBe("SMTP_URL");
    expect(error.code).toBe("mail_config_invalid");
    expect(error.message).toContain("SMTP_URL=");
    expect(error.message).toContain(`scheme ${scheme}`);
    expect(error.message).toContain("user:***@mail.example.com");
    expect(error.message).toContain("smtp://user:password@host:587");
    expect(error.message).not.toContain("hunter2");
  });

  it("refuses an SMTP_URL that is not a URL without echoing its password", () => {
    const error = configError({ SMTP_URL: "smtp://user:hunter2@mail.example.com:99999" });
    expect(error.variable).toBe("SMTP_URL");
    expect(error.message).toContain("is not a valid URL");
    expect(error.message).not.toContain("hunter2");
  });

  it("refuses an SMTP_URL without a host", () => {
    const error = configError({ SMTP_URL: "smtp://" });
    expect(error.variable).toBe("SMTP_URL");
    expect(error.message).toMatch(/SMTP_URL=smtp:\/\/ (names no host|is not a valid URL)/);
  });

  it("writes links to the log when MAIL_LOG_LINKS is true and no SMTP_URL is set", () => {
    for (const value of ["true", "1", "TRUE"]) {
      const config = mailConfigFromEnv({ MAIL_LOG_LINKS: value });
      expect(config.mode).toBe("log");
      expect(config.smtpUrl).toBeNull();
      expect(config.warnings).toEqual([LOG_MODE_WARNING]);
    }
    for (const value of ["false", "0"]) {
      expect(mailConfigFromEnv({ MAIL_LOG_LINKS: value }).mode).toBe("disabled");
    }
  });

  it("refuses a MAIL_LOG_LINKS that is not a boolean", () => {
    const error = configError({ MAIL_LOG_LINKS: "yes" });
    expect(error.variable).toBe("MAIL_LOG_LINKS");
    expect(error.message).toContain("MAIL_LOG_LINKS=yes");
    expect(error.message).toContain("true, false, 1 or 0");
  });

  it("refuses SMTP_URL together with MAIL_LOG_LINKS=true, saying to set one, with the password redacted", () => {
    const error = configError({ SMTP_URL: "smtp://user:hunter2@mail.example.com:587", MAIL_LOG_LINKS: "true" });
    expect(error.variable).toBe("MAIL_LOG_LINKS");
    expect(error.message).toContain("set one");
    expect(error.message).toContain("smtp://user:***@mail.example.com:587");
    expect(error.message).not.toContain("hunter2");
  });

  it("names every bad variable at once", () => {
    const error = configError({
      SMTP_URL: "http://user:hunter2@mail.example.com",
      MAIL_LOG_LINKS: "yes",
      MAIL_FROM: "x",
    });
    expect(error.variable).toBe("SMTP_URL");
    expect(error.problems.map((p) => p.variable)).toEqual(["SMTP_URL", "MAIL_LOG_LINKS", "MAIL_FROM"]);
    expect(error.message.split("\n")).toEqual(error.problems.map((p) => p.message));
    expect(error.message).not.toContain("hunter2");
  });

  it("accepts SMTP_URL with MAIL_LOG_LINKS=false", () => {
    expect(mailConfigFromEnv({ SMTP_URL: "smtp://mail.example.com", MAIL_LOG_LINKS: "false" }).mode).toBe("smtp");
  });

  it("warns whenever links go to the log, more strongly in production, and never otherwise", () => {
    const production = mailConfigFromEnv({ MAIL_LOG_LINKS: "true", NODE_ENV: "production" });
    expect(production.mode).toBe("log");
    expect(production.warnings).toEqual([LOG_MODE_PRODUCTION_WARNING]);
    expect(production.warnings[0]).toContain("decision links in logs let anyone who reads the logs decide gates");
    const development = mailConfigFromEnv({ MAIL_LOG_LINKS: "true", NODE_ENV: "development" });
    expect(development.warnings).toEqual([LOG_MODE_WARNING]);
    expect(development.warnings[0]).toContain("anyone who can read the log can decide those gates");
    expect(mailConfigFromEnv({ SMTP_URL: "smtp://mail.example.com", NODE_ENV: "production" }).warnings).toEqual([]);
    expect(mailConfigFromEnv({ NODE_ENV: "production" }).warnings).toEqual([]);
  });

  it("accepts MAIL_FROM as an address or a name with an address", () => {
    expect(mailConfigFromEnv({ MAIL_FROM: "gates@example.com" }).from).toBe("gates@example.com");
    expect(mailConfigFromEnv({ MAIL_FROM: "Acme Gates <gates@example.com>" }).from).toBe(
      "Acme Gates <gates@example.com>",
    );
  });

  it.each(["Acme Gates", "gates@", "<gates@example.com", "Acme <gates@example.com>\nBcc: x@evil.test"])(
    "refuses MAIL_FROM=%j naming the variable and the fix",
    (from) => {
      const error = configError({ MAIL_FROM: from });
      expect(error.variable).toBe("MAIL_FROM");
      expect(error.message).toContain("MAIL_FROM=");
      expect(error.message).toContain("holds no email address");
      expect(error.message).toContain("outcome-runtime@example.com");
    },
  );

  it("stores OUTCOME_RUNTIME_PUBLIC_URL without trailing slashes", () => {
    expect(mailConfigFromEnv({ OUTCOME_RUNTIME_PUBLIC_URL: "https://outcomes.example.com/" }).publicUrl).toBe(
      "https://outcomes.example.com",
    );
    expect(mailConfigFromEnv({ OUTCOME_RUNTIME_PUBLIC_URL: "https://example.com/outcomes//" }).publicUrl).toBe(
      "https://example.com/outcomes",
    );
    expect(mailConfigFromEnv({ OUTCOME_RUNTIME_PUBLIC_URL: "http://10.0.0.5:8080" }).publicUrl).toBe(
      "http://10.0.0.5:8080",
    );
  });

  it.each([
    ["outcomes.example.com", "is not an absolute URL"],
    ["/outcomes", "is not an absolute URL"],
    ["ftp://outcomes.example.com", "is not an http or https URL"],
    ["javascript:alert(1)", "is not an http or https URL"],
    ["https://outcomes.example.com/?x=1", "has credentials, a query or a fragment"],
    ["https://outcomes.example.com/#top", "has credentials, a query or a fragment"],
  ])("refuses OUTCOME_RUNTIME_PUBLIC_URL=%s", (url, problem) => {
    const error = configError({ OUTCOME_RUNTIME_PUBLIC_URL: url });
    expect(error.variable).toBe("OUTCOME_RUNTIME_PUBLIC_URL");
    expect(error.message).toContain(`OUTCOME_RUNTIME_PUBLIC_URL=${url} ${problem}`);
    expect(error.message).toContain("e.g. https://outcomes.example.com");
  });

  it("does not echo a password put in OUTCOME_RUNTIME_PUBLIC_URL", () => {
    const error = configError({ OUTCOME_RUNTIME_PUBLIC_URL: "https://admin:hunter2@outcomes.example.com" });
    expect(error.variable).toBe("OUTCOME_RUNTIME_PUBLIC_URL");
    expect(error.message).toContain("https://admin:***@outcomes.example.com");
    expect(error.message).not.toContain("hunter2");
  });
});

describe("redactSmtpUrl", () => {
  it.each([
    ["smtp://user:secret@mail.example.com:587", "smtp://user:***@mail.example.com:587"],
    ["smtps://apikey:s3cr%40t@smtp.example.com:465", "smtps://apikey:***@smtp.example.com:465"],
    // An unencoded @ or / in the password: everything up to the last @ is hidden.
    ["smtp://user:p@ss/w?rd@mail.example.com", "smtp://user:***@mail.example.com"],
    ["smtp://:secret@mail.example.com", "smtp://:***@mail.example.com"],
    ["user:secret@mail.example.com", "user:***@mail.example.com"],
  ])("redacts %s", (url, redacted) => {
    expect(redactSmtpUrl(url)).toBe(redacted);
  });

  it.each(["smtp://mail.example.com:587", "smtp://apikey@mail.example.com", "not a url"])(
    "leaves %s, which has no password, unchanged",
    (url) => {
      expect(redactSmtpUrl(url)).toBe(url);
    },
  );
});
