import type { GateContextPackage } from "@outcome-runtime/core";
import { describe, expect, it } from "vitest";
import { type DecisionPageModel, type GateEmailModel, renderDecisionPage, renderGateEmail } from "./render";
import {
  achievementContext,
  agentRequestContext,
  analysis,
  analysisContext,
  approve,
  build,
  emailModel,
  hypothesis,
  launchContext,
  portfolioContext,
  reject,
} from "./test-support/gate-fixtures";

const SCRIPT = "<script>alert(1)</script>";
const SCRIPT_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;";
const ATTRIBUTE = '" onmouseover=alert(1) x="';
const ATTRIBUTE_ESCAPED = "&quot; onmouseover&#x3D;alert(1) x&#x3D;&quot;";

/** Decodes the entities Handlebars' escaping produces, to compare URLs as a browser reads them. */
function decode(html: string): string {
  return html
    .replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">")
    .replaceAll("&quot;", '"')
    .replaceAll("&#x27;", "'")
    .replaceAll("&#x60;", "`")
    .replaceAll("&#x3D;", "=")
    .replaceAll("&amp;", "&");
}

/** Every href value of `html`, decoded. */
function hrefs(html: string): string[] {
  return [...html.matchAll(/href="([^"]*)"/g)].map((m) => decode(m[1]!));
}

const HTML_TAG = /<\/?[a-z][a-z0-9-]*(\s[^>]*)?>/i;

const KINDS: readonly [string, () => GateContextPackage, readonly string[]][] = [
  [
    "portfolio_review",
    portfolioContext,
    [
      "Checkout conversion",
      "checkout_conversion increase to 0.042 by 2027-03-31",
      "One-page checkout",
      "Merging the three checkout steps into one page raises conversion.",
      "Trust badges at payment",
      "increase by 5.0 % (relative)",
      "increase by 0.004 (absolute)",
      "medium",
      "not rated",
      "high",
      "web/checkout/**",
      "api/orders.ts",
      "no paths declared",
      "llm:claude-sonnet",
    ],
  ],
  [
    "launch_approval",
    launchContext,
    [
      "One-page checkout",
      "Adds a one-page checkout behind a flag.",
      "https://github.com/acme/shop/pull/42",
      "web/checkout/page.tsx",
      "web/checkout/steps.tsx",
      "one_page_checkout",
      "builder-agent",
      "2026-12-01 09:30 UTC",
      "control",
      "treatment",
      "50 %",
    ],
  ],
  [
    "analysis_review",
    analysisContext,
    [
      "One-page checkout",
      "stop",
      "(win)",
      "the interval excludes zero",
      "checkout_conversion (proportion)",
      "+1.20 pp",
      "Always-valid 95 % interval",
      "[+0.20 pp, +2.10 pp]",
      "+5.2 %",
      "0.0031",
      "ok (p = 0.41)",
      "refund_rate",
      "page_load_ms",
      "harm",
      "+0.40 %",
      "12,345",
      "12,410",
      "2.31 %",
      "3.51 %",
      "3 d 4 h",
      "2026-12-10 06:00 UTC",
      "https://outcomes.example.com/experiments/exp_1/chart",
    ],
  ],
];

const REASONS = [
  ["opened", "[Outcome Runtime] Decision needed: "],
  ["reminder", "[Outcome Runtime] Reminder: Decision needed: "],
  ["escalation", "[Outcome Runtime] Escalated: Decision needed: "],
] as const;

describe("renderGateEmail", () => {
  for (const [kind, context, facts] of KINDS) {
    for (const [reason, prefix] of REASONS) {
      it(`${kind}, ${reason}: subject, HTML and text carry the decisive facts and every action link`, () => {
        const base = emailModel(context());
        const model: GateEmailModel = {
          ...base,
          reason,
          gate: { ...base.gate, escalatedFrom: ["alice@example.com", "bob@example.com"] },
        };
        const { subject, html, text } = renderGateEmail(model);

        const label = kind.replace("_", " ");
        const title = kind === "portfolio_review" ? "Checkout conversion" : "One-page checkout";
        expect(subject).toBe(`${prefix}${label} for "${title}"`);

        for (const fact of [
          ...facts,
          "2026-12-03 14:05 UTC", // due
          "2 d", // SLA
          "2026-12-05 14:05 UTC", // links expire
          "works once",
          "only shows a confirmation page",
          "Approves the hypotheses; they become experiments.",
          "Rejects every hypothesis of this review.",
        ]) {
          expect(decode(html), fact).toContain(fact);
          expect(text, fact).toContain(fact);
        }
        for (const { url } of model.actions) {
          expect(hrefs(html)).toContain(url);
          expect(text).toContain(url);
        }
        expect(hrefs(html)).toContain("https://outcomes.example.com/gates/gate_1");
        expect(text).toContain("https://outcomes.example.com/gates/gate_1");
        const escalated = "alice@example.com, bob@example.com";
        if (reason === "escalation") {
          expect(html).toContain(escalated);
          expect(text).toContain(escalated);
        } else {
          expect(html).not.toContain(escalated);
          expect(text).not.toContain(escalated);
        }
        expect(text).not.toMatch(HTML_TAG);
        expect(html).not.toMatch(/<script|<img|<link|\son[a-z]+=/i);
      });
    }
  }

  it("shows an agent's question, escaped, with who asked it", () => {
    const { subject, html, text } = renderGateEmail(emailModel(agentRequestContext()));
    expect(subject).toBe('[Outcome Runtime] Decision needed: question from a builder for "One-page checkout"');
    expect(html).toContain("May I also change the &lt;b&gt;button&lt;/b&gt; copy?");
    expect(html).not.toContain("<b>button</b>");
    expect(text).toContain("QUESTION FROM claude-code");
    expect(text).toContain("May I also change the <b>button</b> copy?");
  });

  it("asks the owner to confirm an achievement with the evidence, the window and what shipped", () => {
    const { subject, html, text } = renderGateEmail(emailModel(achievementContext()));
    expect(subject).toBe(
      '[Outcome Runtime] Decision needed: confirmation that the outcome is achieved for "Checkout conversion"',
    );
    for (const fact of [
      "7 d",
      "(target.sustain)",
      "4.20 %", // goal
      "4.46 %", // latest
      "4.41 %", // mean of the window
      "over 7 points, 2026-11-26 00:00 UTC to 2026-12-02 00:00 UTC",
      "4.33 %, past the goal",
      "+6.1 %", // the shipped experiment's lift
      "Series since activation (2 points)",
      "https://outcomes.example.com/outcomes/out_1",
    ]) {
      expect(decode(html), fact).toContain(fact);
      expect(text, fact).toContain(fact);
    }
    const none = renderGateEmail(emailModel(achievementContext({ shipped: [], evidence: null })));
    expect(none.text).toContain("none: the level moved without a shipped experiment");
    expect(none.text).toContain("The signal has stayed past the target for its target.sustain window.");
  });

  it("tells an escalation's recipient why they are asked and by when the links work", () => {
    const base = emailModel(portfolioContext());
    for (const [as, words] of [
      ["backup", "you are asked as the backup"],
      ["owner", "you are asked as the outcome's owner"],
    ] as const) {
      const { html, text } = renderGateEmail({
        ...base,
        reason: "escalation",
        gate: { ...base.gate, escalatedFrom: ["alice@example.com"], escalatedAs: as },
      });
      expect(decode(html)).toContain(words);
      expect(text).toContain(words);
      // The SLA is over; the deadline shown is the links' expiry, not the past due time.
      expect(text).toContain("ended 2026-12-03 14:05 UTC; please decide by 2026-12-05 14:05 UTC");
      expect(text).not.toContain("Due 2026-12-03");
    }
  });

  it("shows a mean metric's effect as a signed number, and a sample ratio mismatch", () => {
    const context = analysisContext({
      analysis: analysis({
        metricKind: "mean",
        effect: -2.5,
        ciLow: -4.25,
        ciHigh: -0.75,
        relativeLift: -0.031,
        pValue: 0.00002,
        srm: { pValue: 0.0004, alarm: true },
        arms: [
          { name: "control", units: 5000, mean: 80.5 },
          { name: "treatment", units: 5400, mean: 78 },
        ],
      }),
    });
    const { html, text } = renderGateEmail(emailModel(context));
    for (const body of [decode(html), text]) {
      expect(body).toContain("-2.5");
      expect(body).toContain("[-4.25, -0.75]");
      expect(body).toContain("-3.1 %");
      expect(body).toContain("< 0.0001");
      expect(body).toContain("MISMATCH");
      expect(body).toContain("(p = 0.0004): the arms' sizes do not match their weights");
      expect(body).toContain("80.5");
      expect(body).not.toContain(" pp");
    }
  });

  it("says so when an analysis review has no analysis and a launch has no build", () => {
    const analysisEmail = renderGateEmail(emailModel(analysisContext({ analysis: null })));
    expect(analysisEmail.text).toContain("No analysis has been stored");
    expect(analysisEmail.html).toContain("No analysis has been stored");
    const launchEmail = renderGateEmail(emailModel(launchContext({ build: null })));
    expect(launchEmail.text).toContain("No build has been reported yet.");
    expect(launchEmail.html).toContain("No build has been reported yet.");
  });

  it("marks actions that need a dashboard session", () => {
    const base = emailModel(portfolioContext());
    const { html, text } = renderGateEmail({
      ...base,
      actions: [{ ...base.actions[0]!, requiresSession: true }],
    });
    expect(html).toContain("needs you signed in to the dashboard");
    expect(text).toContain("needs you signed in to the dashboard");
  });

  it("escapes hostile titles, summaries and reasons in HTML", () => {
    const hostile = `${SCRIPT}${ATTRIBUTE}`;
    const contexts: GateContextPackage[] = [
      portfolioContext({
        outcome: { ...portfolioContext().outcome, name: hostile, target: hostile },
        hypotheses: [hypothesis({ title: hostile, statement: hostile, touchedPaths: [hostile], source: hostile })],
      }),
      launchContext({
        experiment: { ...launchContext().experiment, title: hostile, statement: hostile },
        build: build({ summary: hostile, changedPaths: [hostile], flagKey: hostile }),
      }),
      analysisContext({
        trigger: { action: hostile, reason: hostile, detail: hostile },
        chartUrl: `https://outcomes.example.com/chart${ATTRIBUTE}`,
        analysis: analysis({
          metric: hostile,
          guardrails: [{ metric: hostile, arm: hostile, verdict: hostile, harm: 0, margin: 0, relative: true }],
        }),
      }),
    ];
    for (const context of contexts) {
      const base = emailModel(context);
      const { subject, html, text } = renderGateEmail({
        ...base,
        recipient: hostile,
        actions: [
          {
            option: { ...approve, label: hostile, effect: hostile },
            url: base.actions[0]!.url,
            requiresSession: false,
          },
        ],
      });
      expect(html).not.toContain(SCRIPT);
      expect(html).not.toContain(ATTRIBUTE);
      expect(html).toContain(SCRIPT_ESCAPED);
      expect(html).toContain(ATTRIBUTE_ESCAPED);
      expect(html).not.toMatch(/<script/i);
      // Plain text is not HTML: it shows the string as it is.
      expect(text).toContain(SCRIPT);
      expect(subject).not.toMatch(/[\r\n]/);
    }
  });

  it("shows a javascript: pull request URL as text, never as a link", () => {
    const { html, text } = renderGateEmail(
      emailModel(launchContext({ build: build({ pullRequestUrl: "javascript:alert(1)" }) })),
    );
    expect(html).not.toMatch(/href="\s*javascript:/i);
    expect(html).toContain("javascript:alert(1) (not a web link)");
    expect(hrefs(html).every((href) => /^https?:\/\//.test(href))).toBe(true);
    expect(text).toContain("javascript:alert(1)");
  });

  it("shows non-web action, dashboard and chart URLs as text", () => {
    const base = emailModel(analysisContext({ chartUrl: "data:text/html,hi" }));
    const { html } = renderGateEmail({
      ...base,
      gate: { ...base.gate, dashboardUrl: "javascript:void(0)" },
      actions: [{ option: approve, url: "javascript:alert(2)", requiresSession: false }],
    });
    expect(hrefs(html)).toEqual([]);
    expect(html).toContain("Approve: javascript:alert(2)");
    expect(html).toContain("Dashboard: javascript:void(0)");
    expect(html).toContain("Chart: data:text/html,hi");
  });

  it("keeps the subject on one line and cuts a long title", () => {
    const long = `Line one\r\nBcc: attacker@example.com ${"x".repeat(200)}`;
    const { subject, html } = renderGateEmail(
      emailModel(portfolioContext({ outcome: { ...portfolioContext().outcome, name: long } })),
    );
    expect(subject).not.toMatch(/[\r\n]/);
    expect(subject).toContain('for "Line one Bcc: attacker@example.com x');
    expect(subject).toMatch(/…"$/);
    expect(subject.length).toBeLessThan(140);
    expect(html).toContain("x".repeat(200));
  });

  it("fails loudly when the model lacks a field a template reads", () => {
    const model = emailModel(portfolioContext());
    const broken = { ...model, context: { ...model.context, outcome: undefined } } as unknown as GateEmailModel;
    expect(() => renderGateEmail(broken)).toThrow();
  });
});

const gate = {
  id: "gate_1",
  kind: "portfolio_review" as const,
  dashboardUrl: "https://outcomes.example.com/gates/gate_1",
};

function expectSafePage(html: string): void {
  expect(html).toMatch(/^<!doctype html>/);
  expect(html).toContain('<meta name="robots" content="noindex">');
  expect(html).toContain('<meta name="referrer" content="no-referrer">');
  expect(html).not.toMatch(/<script/i);
  expect(html).not.toMatch(/\son[a-z]+=/i);
  expect(html).not.toMatch(/javascript:/i);
}

describe("renderDecisionPage: confirm", () => {
  const confirm = (overrides: Partial<Extract<DecisionPageModel, { page: "confirm" }>> = {}) =>
    renderDecisionPage({
      page: "confirm",
      recipient: "pm@example.com",
      gate,
      context: portfolioContext(),
      option: approve,
      formAction: "https://outcomes.example.com/email-decisions/tok_1?a=1",
      ...overrides,
    });

  it("asks to confirm with a form posting to its own URL, and says nothing is decided yet", () => {
    const html = confirm();
    expectSafePage(html);
    expect(html).toContain("<title>Confirm: Approve · Outcome Runtime</title>");
    expect(html).toContain("You are about to Approve: Approves the hypotheses; they become experiments.");
    expect(html).toContain("Nothing has been decided yet.");
    const form = html.match(/<form method="post" action="([^"]*)">/);
    expect(form).not.toBeNull();
    expect(decode(form![1]!)).toBe("https://outcomes.example.com/email-decisions/tok_1?a=1");
    expect(html).toMatch(/<textarea id="reason" name="reason" maxlength="2000"[^>]*><\/textarea>/);
    expect(html).toContain('<button type="submit" class="button primary">Approve</button>');
    // The context package is shown too.
    expect(html).toContain("increase by 5.0 % (relative)");
    expect(html).toContain("web/checkout/**");
  });

  it("offers one checked approve checkbox per hypothesis for a portfolio approval", () => {
    const html = confirm();
    const boxes = [...html.matchAll(/<input type="checkbox" name="approve" value="([^"]*)" checked>/g)].map(
      (m) => m[1],
    );
    expect(boxes).toEqual(["hyp_1", "hyp_2"]);
    expect(html).toContain("untick the ones you want rejected");
  });

  it("lists the hypotheses without checkboxes for a portfolio rejection", () => {
    const html = confirm({ option: reject });
    expectSafePage(html);
    expect(html).not.toContain('type="checkbox"');
    expect(html).toContain("These hypotheses will all be rejected:");
    expect(html).toMatch(
      /<li><input type="hidden" name="shown" value="[^"]+">One-page checkout <span class="muted">\(one-page-checkout\)<\/span><\/li>/,
    );
    expect(html).toMatch(/<li><input type="hidden" name="shown" value="[^"]+">Trust badges at payment/);
    // Every hypothesis shown is named in the form, so a review that changed since is refused, not decided unseen.
    expect(html.match(/name="shown"/g)?.length).toBe(2);
    expect(html).toContain('class="button danger"');
  });

  it("has no checkboxes for other gate kinds", () => {
    const html = confirm({ gate: { ...gate, kind: "launch_approval" }, context: launchContext() });
    expectSafePage(html);
    expect(html).not.toContain('type="checkbox"');
    expect(html).toContain("Adds a one-page checkout behind a flag.");
    expect(html).toContain('<a href="https://github.com/acme/shop/pull/42"');
  });

  it("accepts an absolute path as the form action", () => {
    expect(confirm({ formAction: "/email-decisions/tok_1" })).toContain(
      '<form method="post" action="/email-decisions/tok_1">',
    );
  });

  it.each(["javascript:alert(1)", "//evil.example.com/x", "relative/path"])(
    "refuses the form action %s",
    (formAction) => {
      expect(() => confirm({ formAction })).toThrow(/formAction must be an http\(s\) URL or an absolute path/);
    },
  );

  it("escapes hostile hypothesis titles, including in the checkbox labels and values", () => {
    const html = confirm({
      context: portfolioContext({
        hypotheses: [hypothesis({ id: `hyp${ATTRIBUTE}`, title: SCRIPT, statement: ATTRIBUTE })],
      }),
      option: { ...approve, label: SCRIPT, effect: ATTRIBUTE },
    });
    expect(html).not.toContain(SCRIPT);
    expect(html).not.toContain(ATTRIBUTE);
    expect(html).toContain(SCRIPT_ESCAPED);
    expect(html).toContain(`value="hyp${ATTRIBUTE_ESCAPED}"`);
    expect(html).not.toMatch(/<script/i);
  });
});

describe("renderDecisionPage: decided", () => {
  it("shows the decision, its time in UTC, the reason and the hypotheses approved and rejected", () => {
    const html = renderDecisionPage({
      page: "decided",
      recipient: "pm@example.com",
      gate,
      option: approve,
      decidedAt: "2026-12-02T08:15:00Z",
      reason: "Two strong bets.",
      approved: ["One-page checkout"],
      rejected: ["Trust badges at payment"],
    });
    expectSafePage(html);
    expect(html).toContain("<h1>Decided: Approve</h1>");
    expect(html).toContain("Decided by pm@example.com at 2026-12-02 08:15 UTC.");
    expect(html).toContain("Two strong bets.");
    expect(html).toMatch(/<h2>Approved<\/h2>\s*<ul>\s*<li>One-page checkout<\/li>/);
    expect(html).toMatch(/<h2>Rejected<\/h2>\s*<ul>\s*<li>Trust badges at payment<\/li>/);
    expect(hrefs(html)).toEqual(["https://outcomes.example.com/gates/gate_1"]);
  });

  it("says when no reason was given and leaves out empty lists", () => {
    const html = renderDecisionPage({
      page: "decided",
      recipient: "pm@example.com",
      gate: { ...gate, kind: "launch_approval" },
      option: reject,
      decidedAt: "2026-12-02T08:15:00Z",
      reason: null,
    });
    expect(html).toContain("No reason given.");
    expect(html).not.toContain("<h2>Approved</h2>");
    expect(html).not.toContain("<h2>Rejected</h2>");
  });

  it("escapes a hostile reason and titles", () => {
    const html = renderDecisionPage({
      page: "decided",
      recipient: "pm@example.com",
      gate,
      option: approve,
      decidedAt: "2026-12-02T08:15:00Z",
      reason: `${SCRIPT}${ATTRIBUTE}`,
      approved: [SCRIPT],
      rejected: [ATTRIBUTE],
    });
    expect(html).not.toContain(SCRIPT);
    expect(html).not.toContain(ATTRIBUTE);
    expect(html).toContain(SCRIPT_ESCAPED);
    expect(html).toContain(ATTRIBUTE_ESCAPED);
  });
});

describe("renderDecisionPage: refused", () => {
  it("shows the title, the message, the code and the dashboard link", () => {
    const html = renderDecisionPage({
      page: "refused",
      code: "link_used",
      title: "This link was already used",
      message: "Each link works once. Open the dashboard to see the decision.",
      dashboardUrl: "https://outcomes.example.com/gates/gate_1",
    });
    expectSafePage(html);
    expect(html).toContain("<title>This link was already used · Outcome Runtime</title>");
    expect(html).toContain("<h1>This link was already used</h1>");
    expect(html).toContain("<p>Each link works once. Open the dashboard to see the decision.</p>");
    expect(html).toContain("Reference: link_used");
    expect(hrefs(html)).toEqual(["https://outcomes.example.com/gates/gate_1"]);
  });

  it("has no link without a dashboard URL, and escapes its text", () => {
    const html = renderDecisionPage({
      page: "refused",
      code: "invalid_link",
      title: SCRIPT,
      message: ATTRIBUTE,
      dashboardUrl: null,
    });
    expect(hrefs(html)).toEqual([]);
    expect(html).not.toContain(SCRIPT);
    expect(html).not.toContain(ATTRIBUTE);
    expect(html).toContain(SCRIPT_ESCAPED);
    expect(html).toContain(ATTRIBUTE_ESCAPED);
  });
});
