/**
 * `outcome-runtime experiments list|show|brief|claim|built`: the experiments
 * of the workspace, one in detail (state, arms, latest analysis, gates), the
 * build brief a coding agent works from, and the builder's two steps (claim
 * it, report it built) for whoever builds without MCP.
 */
import { EXPERIMENT_STATES } from "@outcome-runtime/core";
import { Command, Option } from "commander";
import type { BriefJson, ExperimentDetailJson, ExperimentJson, ResponseJson, TransitionJson } from "../api-types";
import { clientOf, type GlobalOptions, out, outJson, stdoutColors } from "../output";
import { renderExperiments } from "../render-work";

/** Outcomes read per page while listing every experiment (the API's maximum). */
const OUTCOME_PAGE = 200;

export function experimentsCommand(globals: () => GlobalOptions): Command {
  const experiments = new Command("experiments")
    .description("the experiments of your outcomes: list them, show one, print its build brief")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ outcome-runtime experiments list --state approved",
        "  $ outcome-runtime experiments show let-shoppers-check-out-as-a-guest",
        "  $ outcome-runtime experiments brief let-shoppers-check-out-as-a-guest",
      ].join("\n"),
    );

  experiments
    .command("list")
    .description("list experiments, grouped by outcome")
    .option("--outcome <id|slug>", "only this outcome's experiments")
    .addOption(new Option("--state <state>", "only experiments in this state").choices([...EXPERIMENT_STATES]))
    .option("--ids", "print only the keys, one per line (for scripts)")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ outcome-runtime experiments list",
        "  $ outcome-runtime experiments list --outcome checkout-abandonment --state running",
        "  $ outcome-runtime --json experiments list --state approved | jq -r '.items[].key'",
        "  $ outcome-runtime experiments list --state approved --ids",
        "",
        "--json prints { items: [experiment, …] } (the API's experiment objects).",
      ].join("\n"),
    )
    .action(async (opts: { outcome?: string; state?: string; ids?: boolean }) => {
      const options = globals();
      const client = clientOf(options);
      const outcomes: { slug: string; id: string }[] = [];
      if (opts.outcome !== undefined) {
        outcomes.push({ slug: opts.outcome, id: opts.outcome });
      } else {
        let cursor: string | null = null;
        do {
          const query: string = `/v1/outcomes?limit=${OUTCOME_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
          const page: ResponseJson<"/v1/outcomes", "get"> = await client.request("GET", query);
          outcomes.push(...page.items.map((s) => ({ slug: s.outcome.slug, id: s.outcome.id })));
          cursor = page.nextCursor;
        } while (cursor !== null);
      }
      const groups: { outcome: string; items: ExperimentJson[] }[] = [];
      for (const o of outcomes) {
        const list = await client.all<ExperimentJson>(`/v1/outcomes/${encodeURIComponent(o.id)}/experiments`);
        groups.push({
          outcome: o.slug,
          items: list.filter((e) => opts.state === undefined || e.state === opts.state),
        });
      }
      if (options.json) outJson({ items: groups.flatMap((g) => g.items) });
      else if (opts.ids) {
        const keys = groups.flatMap((g) => g.items.map((e) => e.key));
        if (keys.length > 0) out(keys.join("\n"));
      } else out(renderExperiments.list(groups, stdoutColors(), opts.state));
    });

  experiments
    .command("show")
    .description("one experiment: state, arms, build, latest analysis (effect, always-valid interval, p-value), gates")
    .argument("<id|key>", "experiment id or key")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ outcome-runtime experiments show one-page-checkout",
        "  $ outcome-runtime --json experiments show one-page-checkout | jq .latestAnalysis.pValue",
        "",
        "--json prints { experiment, gates, latestAnalysis } as GET /v1/experiments/:id answers.",
      ].join("\n"),
    )
    .action(async (idOrKey: string) => {
      const options = globals();
      const detail = await clientOf(options).request<ExperimentDetailJson>(
        "GET",
        `/v1/experiments/${encodeURIComponent(idOrKey)}`,
      );
      if (options.json) outJson(detail);
      else out(renderExperiments.detail(detail, stdoutColors()));
    });

  experiments
    .command("brief")
    .description("print the build brief of an experiment as Markdown (what a coding agent builds from)")
    .argument("<id|key>", "experiment id or key")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ outcome-runtime experiments brief one-page-checkout > BRIEF.md",
        "  $ outcome-runtime --json experiments brief one-page-checkout | jq .forbiddenPaths",
        "",
        "--json prints the structured brief (hypothesis, arms, instrumentation, paths, acceptance, next).",
        "Agents get the same brief over MCP: get_experiment_brief, or the resource experiment://{id}/brief.",
      ].join("\n"),
    )
    .action(async (idOrKey: string) => {
      const options = globals();
      const { brief, markdown } = await clientOf(options).request<BriefJson>(
        "GET",
        `/v1/experiments/${encodeURIComponent(idOrKey)}/brief`,
      );
      if (options.json) outJson(brief);
      else out(markdown);
    });

  experiments
    .command("claim")
    .description("claim an approved experiment to build it (approved → building); agents do this over MCP")
    .argument("<id|key>", "experiment id or key")
    .option("--as <builder>", "who builds it (default: the API key's name)")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ outcome-runtime experiments claim show-delivery-date-early",
        "  $ outcome-runtime experiments claim show-delivery-date-early --as dana@acme.example",
      ].join("\n"),
    )
    .action(async (idOrKey: string, opts: { as?: string }) => {
      const options = globals();
      const result = await transition(options, idOrKey, {
        action: "claim",
        ...(opts.as ? { claimedBy: opts.as } : {}),
      });
      if (options.json) outJson(result);
      else
        out(`${result.experiment.key}: ${result.experiment.state} (claimed by ${result.experiment.claimedBy ?? "?"})`);
    });

  experiments
    .command("built")
    .description(
      "report a claimed experiment built (building → built): opens its launch gate with the build report; agents do this over MCP",
    )
    .argument("<id|key>", "experiment id or key")
    .requiredOption(
      "--changed <paths...>",
      "the paths the change touched (checked against the outcome's forbidden paths)",
    )
    .option("--summary <text>", "what was built, for the launch approval")
    .option("--pr <url>", "link to the change (http or https)")
    .option("--flag <key>", "the feature flag that splits the traffic")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ outcome-runtime experiments built show-delivery-date-early --changed apps/web/src/checkout/Summary.tsx",
        "  $ outcome-runtime experiments built show-delivery-date-early --changed apps/web/src/checkout/Summary.tsx \\",
        '      --summary "Delivery date above the fold" --pr https://github.com/acme/web/pull/812 --flag delivery-date',
      ].join("\n"),
    )
    .action(async (idOrKey: string, opts: { changed: string[]; summary?: string; pr?: string; flag?: string }) => {
      const options = globals();
      const build =
        opts.summary === undefined
          ? undefined
          : {
              summary: opts.summary,
              ...(opts.pr === undefined ? {} : { pullRequestUrl: opts.pr }),
              ...(opts.flag === undefined ? {} : { flagKey: opts.flag }),
            };
      const result = await transition(options, idOrKey, {
        action: "report_built",
        changedPaths: opts.changed,
        ...(build === undefined ? {} : { build }),
      });
      if (options.json) outJson(result);
      else {
        const gate = result.openedGates[0];
        out(`${result.experiment.key}: ${result.experiment.state}${gate ? ` (launch gate ${gate.id})` : ""}`);
      }
    });

  return experiments;
}

async function transition(options: GlobalOptions, idOrKey: string, body: Record<string, unknown>) {
  return clientOf(options).request<TransitionJson>(
    "POST",
    `/v1/experiments/${encodeURIComponent(idOrKey)}/transitions`,
    { json: body },
  );
}
