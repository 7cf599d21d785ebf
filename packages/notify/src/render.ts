/**
 * Renders gate emails (subject, HTML, plain text) and the decision pages a
 * person sees after clicking an email link, from the Handlebars templates in
 * `packages/notify/templates/`.
 *
 * Safety rests on three rules the templates keep: HTML templates print every
 * value with `{{…}}` (escaped), never `{{{…}}}`; a URL becomes an `href` only
 * when the `isWebUrl` helper says it is http(s); pages carry no script at all.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { DecisionOption, GateContextPackage, GateKind } from "@outcome-runtime/core";
import Handlebars from "handlebars";
import {
  formatConfidence,
  formatCount,
  formatDuration,
  formatEffect,
  formatGuardrailAmount,
  formatGuardrailMargin,
  formatInterval,
  formatMean,
  formatPrediction,
  formatPValue,
  formatRelative,
  formatShare,
  formatUtc,
  isWebUrl,
} from "./format";

export interface GateEmailModel {
  /** Why the email goes out: the gate opened, its reminder, or its escalation to the backup. */
  readonly reason: "opened" | "reminder" | "escalation";
  readonly recipient: string;
  readonly gate: {
    readonly id: string;
    readonly kind: GateKind;
    /** ISO 8601. */
    readonly dueAt: string;
    readonly slaSeconds: number;
    readonly dashboardUrl: string;
    /** for escalation: the assignees who did not decide */
    readonly escalatedFrom?: readonly string[];
    /** Escalation: whether the recipient is the gate's backup or, without one, the outcome's owner (default backup). */
    readonly escalatedAs?: "backup" | "owner";
  };
  readonly context: GateContextPackage;
  /** One per decision the gate takes now. `requiresSession`: the link leads to a page that asks for the dashboard, it cannot decide by email. */
  readonly actions: readonly {
    readonly option: DecisionOption;
    readonly url: string;
    readonly requiresSession: boolean;
  }[];
  /** ISO time the links stop working. */
  readonly linksExpireAt: string;
}

export interface RenderedEmail {
  /** One line, at most ~120 characters. */
  readonly subject: string;
  readonly html: string;
  /** Plain text alternative; no markup. */
  readonly text: string;
}

interface PageGate {
  readonly id: string;
  readonly kind: GateKind;
  readonly dashboardUrl: string;
}

export type RefusedCode =
  | "invalid_link"
  | "link_used"
  | "link_expired"
  | "link_superseded"
  | "wrong_recipient"
  | "already_decided"
  | "session_required"
  | "not_allowed"
  | "decision_unavailable";

export type DecisionPageModel =
  | {
      readonly page: "confirm";
      readonly recipient: string;
      readonly gate: PageGate;
      readonly context: GateContextPackage;
      readonly option: DecisionOption;
      /** URL the form POSTs to (the page's own URL) */
      readonly formAction: string;
    }
  | {
      readonly page: "decided";
      readonly recipient: string;
      readonly gate: PageGate;
      readonly option: DecisionOption;
      /** ISO 8601. */
      readonly decidedAt: string;
      readonly reason: string | null;
      /** portfolio review: titles approved and rejected */
      readonly approved?: readonly string[];
      readonly rejected?: readonly string[];
    }
  | {
      readonly page: "refused";
      readonly code: RefusedCode;
      readonly title: string;
      readonly message: string;
      readonly dashboardUrl: string | null;
    };

/** Longest subject title before it is cut with "…"; the body shows it whole. */
const SUBJECT_TITLE_MAX = 80;

const KIND_LABELS: Record<GateKind, string> = {
  portfolio_review: "portfolio review",
  launch_approval: "launch approval",
  analysis_review: "analysis review",
  agent_request: "question from a builder",
  achievement_review: "confirmation that the outcome is achieved",
};

/** The partial (`templates/partials/<name>.{html,text}.hbs`) that shows each kind's context package. */
const CONTEXT_PARTIALS: Record<GateKind, string> = {
  portfolio_review: "portfolio-review",
  launch_approval: "launch-approval",
  analysis_review: "analysis-review",
  agent_request: "agent-request",
  achievement_review: "achievement-review",
};

const TONE_COLORS: Record<DecisionOption["tone"], string> = {
  primary: "#1f6feb",
  danger: "#cf222e",
  neutral: "#57606a",
};

/**
 * Renders the email for one recipient of a gate: the subject
 * (`[Outcome Runtime] Decision needed: portfolio review for "Checkout conversion"`,
 * prefixed `Reminder:` or `Escalated:`), an email-safe HTML body (inline styles,
 * no script, no external image) and its plain-text twin. Both show the context
 * package, the due time, one link per action, when the links expire and the
 * dashboard link. An action or dashboard URL that is not http(s) is shown as text.
 *
 * @throws Error when the templates cannot be read or the model lacks a field a template reads.
 */
export function renderGateEmail(model: GateEmailModel): RenderedEmail {
  const t = templates();
  const title =
    model.context.kind === "portfolio_review" || model.context.kind === "achievement_review"
      ? model.context.outcome.name
      : model.context.experiment.title;
  const view = {
    reason: model.reason,
    recipient: model.recipient,
    gate: {
      ...model.gate,
      escalatedFrom: model.gate.escalatedFrom ?? [],
      escalatedAs: model.gate.escalatedAs === "owner" ? "outcome's owner" : "backup",
    },
    context: model.context,
    actions: model.actions,
    linksExpireAt: model.linksExpireAt,
    title,
    subjectTitle: truncate(oneLine(title), SUBJECT_TITLE_MAX),
  };
  return {
    subject: oneLine(t.subject(view)),
    html: t.emailHtml(view),
    text: tidyText(t.emailText(view)),
  };
}

/**
 * Renders a full HTML page (`<!doctype html>…`) for a click on an email link:
 * - `confirm`: the context package, "You are about to <label>: <effect>", and a
 *   form POSTing `reason` (≤ 2000 characters, optional) to `formAction`; for a
 *   portfolio review `approve`, one checked `approve` checkbox per hypothesis
 *   (value = hypothesis id). Nothing is decided until it is submitted.
 * - `decided`: the decision, its time in UTC, the reason and, for a portfolio
 *   review, the hypotheses approved and rejected.
 * - `refused`: why the link cannot be used, with the dashboard link when given.
 *
 * The page has no script (it is served with a CSP forbidding them), only an
 * inline `<style>`, and asks robots not to index it and browsers not to send
 * a Referer.
 *
 * @throws Error when `formAction` is neither an http(s) URL nor an absolute path.
 */
export function renderDecisionPage(model: DecisionPageModel): string {
  const t = templates();
  switch (model.page) {
    case "confirm": {
      if (!isWebUrl(model.formAction) && !/^\/(?!\/)/.test(model.formAction)) {
        throw new Error(
          `formAction must be an http(s) URL or an absolute path; got ${JSON.stringify(model.formAction)}`,
        );
      }
      const portfolio = model.context.kind === "portfolio_review";
      return t.confirmPage({
        ...model,
        portfolioApprove: portfolio && model.option.decision === "approve",
        portfolioReject: portfolio && model.option.decision === "reject",
      });
    }
    case "decided":
      return t.decidedPage({ ...model, approved: model.approved ?? [], rejected: model.rejected ?? [] });
    case "refused":
      return t.refusedPage(model);
  }
}

/**
 * A page of the sign-in and invitation links: a message, and optionally a
 * form (POST to `form.action` with hidden fields) or a link. Like the gate
 * pages, it runs no script.
 */
export interface AccountPageModel {
  readonly eyebrow: string;
  readonly title: string;
  readonly message: string;
  readonly form?: {
    readonly action: string;
    readonly button: string;
    readonly fields: readonly { readonly name: string; readonly value: string }[];
  };
  readonly link?: { readonly url: string; readonly label: string };
}

/**
 * Render an account page (sign-in link, invitation) as HTML.
 *
 * @throws Error when `form.action` is not an absolute path or http(s) URL, or `link.url` not http(s) or a path.
 */
export function renderAccountPage(model: AccountPageModel): string {
  const pathOrWeb = (url: string) => isWebUrl(url) || /^\/(?!\/)/.test(url);
  if (model.form !== undefined && !pathOrWeb(model.form.action)) {
    throw new Error(`form.action must be an http(s) URL or an absolute path; got ${JSON.stringify(model.form.action)}`);
  }
  if (model.link !== undefined && !pathOrWeb(model.link.url)) {
    throw new Error(`link.url must be an http(s) URL or an absolute path; got ${JSON.stringify(model.link.url)}`);
  }
  return templates().accountPage({ form: null, link: null, ...model });
}

/** An account email: a sign-in link, or an invitation to a workspace. */
export interface AccountEmailModel {
  readonly subject: string;
  readonly intro: string;
  readonly button: string;
  /** The link (http(s)). */
  readonly url: string;
  readonly expiresAt: Date;
}

/**
 * Render an account email (HTML and plain text, same content).
 *
 * @throws Error when `url` is not an http(s) URL.
 */
export function renderAccountEmail(model: AccountEmailModel): RenderedEmail {
  if (!isWebUrl(model.url)) throw new Error(`url must be an http(s) URL; got ${JSON.stringify(model.url)}`);
  const t = templates();
  return {
    subject: oneLine(model.subject),
    html: t.accountEmailHtml(model),
    text: tidyText(t.accountEmailText(model)),
  };
}

type Template = Handlebars.TemplateDelegate<unknown>;
type CompileOptions = NonNullable<Parameters<typeof Handlebars.compile>[1]>;

interface Templates {
  readonly subject: Template;
  readonly emailHtml: Template;
  readonly emailText: Template;
  readonly confirmPage: Template;
  readonly decidedPage: Template;
  readonly refusedPage: Template;
  readonly accountPage: Template;
  readonly accountEmailHtml: Template;
  readonly accountEmailText: Template;
}

const TEMPLATES_DIR = new URL("../templates/", import.meta.url);
const PARTIALS_DIR = new URL("partials/", TEMPLATES_DIR);

let cache: Templates | undefined;

/** Reads and compiles every template once, on first use. */
function templates(): Templates {
  if (cache !== undefined) return cache;
  // `strict`: a field a template names but the view lacks throws instead of rendering empty.
  const html = environment("html", { strict: true });
  const text = environment("text", { strict: true, noEscape: true });
  cache = {
    subject: text.compile(read("gate-email.subject.hbs"), { strict: true, noEscape: true }),
    emailHtml: html.compile(read("gate-email.html.hbs"), { strict: true }),
    emailText: text.compile(read("gate-email.text.hbs"), { strict: true, noEscape: true }),
    confirmPage: html.compile(read("confirm-page.html.hbs"), { strict: true }),
    decidedPage: html.compile(read("decided-page.html.hbs"), { strict: true }),
    refusedPage: html.compile(read("refused-page.html.hbs"), { strict: true }),
    accountPage: html.compile(read("account-page.html.hbs"), { strict: true }),
    accountEmailHtml: html.compile(read("account-email.html.hbs"), { strict: true }),
    accountEmailText: text.compile(read("account-email.text.hbs"), { strict: true, noEscape: true }),
  };
  return cache;
}

function read(name: string, dir: URL = TEMPLATES_DIR): string {
  return readFileSync(new URL(name, dir), "utf8");
}

/**
 * A Handlebars environment with our helpers and the partials of one flavour:
 * `partials/<name>.html.hbs` registered as `<name>` for HTML, `.text.hbs` for text.
 */
function environment(flavour: "html" | "text", options: CompileOptions): typeof Handlebars {
  const env = Handlebars.create();
  const suffix = `.${flavour}.hbs`;
  for (const file of readdirSync(PARTIALS_DIR)) {
    if (file.endsWith(suffix)) {
      env.registerPartial(file.slice(0, -suffix.length), env.compile(read(file, PARTIALS_DIR), options));
    }
  }
  // Handlebars passes its `options` object as the last argument; `args` drops it.
  const helper =
    <A extends unknown[]>(fn: (...a: A) => unknown) =>
    (...args: unknown[]) =>
      fn(...(args.slice(0, -1) as A));
  env.registerHelper({
    fmtRelative: helper(formatRelative),
    fmtShare: helper(formatShare),
    fmtEffect: helper(formatEffect),
    fmtInterval: helper(formatInterval),
    fmtMean: helper(formatMean),
    fmtPValue: helper(formatPValue),
    fmtConfidence: helper(formatConfidence),
    fmtCount: helper(formatCount),
    fmtDuration: helper(formatDuration),
    fmtUtc: helper(formatUtc),
    fmtPrediction: helper(formatPrediction),
    fmtGuardrail: helper(formatGuardrailAmount),
    fmtMargin: helper(formatGuardrailMargin),
    isWebUrl: helper(isWebUrl),
    eq: helper((a: unknown, b: unknown) => a === b),
    orText: helper((value: string | null, fallback: string) => (value === null || value === "" ? fallback : value)),
    kindLabel: helper((kind: GateKind) => KIND_LABELS[kind]),
    contextPartial: helper((kind: GateKind) => CONTEXT_PARTIALS[kind]),
    toneColor: helper((tone: DecisionOption["tone"]) => TONE_COLORS[tone]),
  });
  return env;
}

/** Collapses whitespace (line breaks included, which would break a header) into single spaces. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1).trimEnd()}…`;
}

/** Drops trailing spaces and runs of blank lines the templates' layout leaves in plain text. */
function tidyText(text: string): string {
  return `${text
    .replace(/[ \t]+$/gm, "")
    .replace(/\n{3,}/g, "\n\n")
    .trim()}\n`;
}
