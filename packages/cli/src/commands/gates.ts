/**
 * `outcome-runtime gates list|show|approve|reject|decide`: a person's inbox
 * of human decisions, one gate with what is needed to decide it, and the
 * decision itself. The API applies every rule (who may decide, which
 * decisions a gate takes now, exactly once); refusals print as
 * `error[code]: detail` and exit 1.
 */
import { GATE_KINDS, GATE_STATES } from "@outcome-runtime/core";
import { Argument, Command, Option } from "commander";
import type { DecisionResultJson, GateDetailJson, ResponseJson } from "../api-types";
import { clientOf, type GlobalOptions, out, outJson, stdoutColors } from "../output";
import { renderGates } from "../render-work";

/**
 * Every decision value a gate takes, by kind: portfolio_review,
 * launch_approval and agent_request take approve | reject; analysis_review
 * takes ship | iterate | extend | roll_back while the experiment is
 * analysing, resume | roll_back while it is paused. The API decides which
 * fit a given gate now.
 */
const DECISIONS = ["approve", "reject", "ship", "iterate", "extend", "roll_back", "resume"] as const;

export function gatesCommand(globals: () => GlobalOptions): Command {
  const gates = new Command("gates")
    .description("human decisions: your inbox of pending gates, one gate in detail, approve, reject or decide")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ outcome-runtime gates list",
        "  $ outcome-runtime gates show 7c1d…",
        '  $ outcome-runtime gates approve 7c1d… --reason "worth testing"',
        "  $ outcome-runtime gates decide 7c1d… ship",
      ].join("\n"),
    );

  gates
    .command("list")
    .description("your inbox: the pending gates you may decide (--all for every gate)")
    .option("--all", "every gate of the workspace, whoever may decide it and whatever its status")
    .addOption(new Option("--kind <kind>", "only gates of this kind").choices([...GATE_KINDS]))
    .addOption(new Option("--status <status>", "only gates in this status").choices([...GATE_STATES]))
    .option("--limit <n>", "at most this many (1–200)", "50")
    .option("--cursor <cursor>", "the next page: the nextCursor of a previous --json answer")
    .option("--ids", "print only the gate ids, one per line (for scripts)")
    .addHelpText(
      "after",
      [
        "",
        "Without --all this is GET /v1/gates?assignee=me&status=pending: the gates the API key's",
        "person is an assignee, the backup or the escalation target of.",
        "",
        "Examples:",
        "  $ outcome-runtime gates list",
        "  $ outcome-runtime gates list --kind analysis_review",
        "  $ outcome-runtime gates list --all --status approved",
        "  $ outcome-runtime --json gates list | jq -r '.items[].id'",
        "  $ outcome-runtime gates approve $(outcome-runtime gates list --all --status pending --kind launch_approval --ids)",
        "",
        "--json prints { items: [gate, …], nextCursor }.",
      ].join("\n"),
    )
    .action(
      async (opts: {
        all?: boolean;
        kind?: string;
        status?: string;
        limit: string;
        cursor?: string;
        ids?: boolean;
      }) => {
        const options = globals();
        const query = new URLSearchParams();
        if (!opts.all) {
          query.set("assignee", "me");
          query.set("status", opts.status ?? "pending");
        } else if (opts.status) {
          query.set("status", opts.status);
        }
        if (opts.kind) query.set("kind", opts.kind);
        query.set("limit", opts.limit);
        if (opts.cursor) query.set("cursor", opts.cursor);
        const page = await clientOf(options).request<ResponseJson<"/v1/gates", "get">>("GET", `/v1/gates?${query}`);
        if (options.json) {
          outJson(page);
          return;
        }
        if (opts.ids) {
          if (page.items.length > 0) out(page.items.map((g) => g.id).join("\n"));
          return;
        }
        const c = stdoutColors();
        out(renderGates.list(page.items, c, !opts.all && (opts.status ?? "pending") === "pending"));
        if (page.nextCursor) out(c.dim(`More: outcome-runtime gates list … --cursor ${page.nextCursor}`));
      },
    );

  gates
    .command("show")
    .description(
      "one gate: why it opened, what it decides (hypotheses, build, analysis), and the decisions it takes now",
    )
    .argument("<id>", "gate id")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ outcome-runtime gates show 7c1d…",
        "  $ outcome-runtime --json gates show 7c1d… | jq '.options[].decision'",
        "",
        "--json prints { gate, experiments, contextPackage, options } as GET /v1/gates/:id answers.",
      ].join("\n"),
    )
    .action(async (id: string) => {
      const options = globals();
      const detail = await clientOf(options).request<GateDetailJson>("GET", `/v1/gates/${encodeURIComponent(id)}`);
      if (options.json) outJson(detail);
      else out(renderGates.detail(detail, stdoutColors()));
    });

  const decide = async (id: string, decision: string, reason: string | undefined) => {
    const options = globals();
    const result = await clientOf(options).request<DecisionResultJson>(
      "POST",
      `/v1/gates/${encodeURIComponent(id)}/decision`,
      { json: { decision, ...(reason === undefined ? {} : { reason }) } },
    );
    if (options.json) outJson(result);
    else out(renderGates.decision(result, stdoutColors()));
  };

  const refusals = [
    "",
    "Refusals print error[code]: detail and exit 1, e.g. error[gate_already_decided] (with who decided",
    "first), error[gate_not_assignee], error[agents_cannot_decide] (agent keys never decide),",
    "error[separation_of_duties] (you revised the outcome within the launch SLA: someone else approves),",
    "error[invalid_decision] (not a decision this gate takes now), error[not_found].",
  ];

  gates
    .command("approve")
    .description("approve a gate: a portfolio review (every hypothesis), a launch, or an agent's question (yes)")
    .argument("<id>", "gate id")
    .option("--reason <text>", "why; kept with the decision in the audit log")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ outcome-runtime gates approve 7c1d…",
        '  $ outcome-runtime gates approve 7c1d… --reason "flag is dark, PR reviewed"',
        ...refusals,
      ].join("\n"),
    )
    .action((id: string, opts: { reason?: string }) => decide(id, "approve", opts.reason));

  gates
    .command("reject")
    .description(
      "reject a gate: a portfolio review (every hypothesis), a launch (back to the builder), a question (no)",
    )
    .argument("<id>", "gate id")
    .option("--reason <text>", "why; kept with the decision in the audit log")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        '  $ outcome-runtime gates reject 7c1d… --reason "touches the payment form; split it"',
        ...refusals,
      ].join("\n"),
    )
    .action((id: string, opts: { reason?: string }) => decide(id, "reject", opts.reason));

  gates
    .command("decide")
    .description(
      "decide a gate with any decision it takes: an analysis review's ship, iterate, extend, roll_back, resume",
    )
    .argument("<id>", "gate id")
    .addArgument(new Argument("<decision>", "the decision").choices([...DECISIONS]))
    .option("--reason <text>", "why; kept with the decision and in the experiment's learning")
    .addHelpText(
      "after",
      [
        "",
        "An analysis review takes ship | iterate | extend | roll_back while the experiment is analysing,",
        "and resume | roll_back while it is paused (kill switch, guardrail, manual pause). `gates show <id>`",
        "lists the decisions a gate takes now. approve and reject work here too.",
        "",
        "Examples:",
        '  $ outcome-runtime gates decide 7c1d… ship --reason "significant win, guardrails ok"',
        "  $ outcome-runtime gates decide 7c1d… resume",
        ...refusals,
      ].join("\n"),
    )
    .action((id: string, decision: string, opts: { reason?: string }) => decide(id, decision, opts.reason));

  return gates;
}
