/**
 * `outcome-runtime experiments list|show|brief`: the experiments of the
 * workspace, one in detail (state, arms, latest analysis, gates), and the
 * build brief a coding agent works from.
 */
import { EXPERIMENT_STATES } from "@outcome-runtime/core";
import { Command, Option } from "commander";
import type { BriefJson, ExperimentDetailJson, ExperimentJson, OutcomeSummaryJson, Page } from "../api-types";
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
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ outcome-runtime experiments list",
        "  $ outcome-runtime experiments list --outcome checkout-abandonment --state running",
        "  $ outcome-runtime --json experiments list --state approved | jq -r '.items[].key'",
        "",
        "--json prints { items: [experiment, …] } (the API's experiment objects).",
      ].join("\n"),
    )
    .action(async (opts: { outcome?: string; state?: string }) => {
      const options = globals();
      const client = clientOf(options);
      const outcomes: { slug: string; id: string }[] = [];
      if (opts.outcome !== undefined) {
        outcomes.push({ slug: opts.outcome, id: opts.outcome });
      } else {
        let cursor: string | null = null;
        do {
          const query: string = `/v1/outcomes?limit=${OUTCOME_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
          const page: Page<OutcomeSummaryJson> = await client.request("GET", query);
          outcomes.push(...page.items.map((s) => ({ slug: s.outcome.slug, id: s.outcome.id })));
          cursor = page.nextCursor;
        } while (cursor !== null);
      }
      const groups: { outcome: string; items: ExperimentJson[] }[] = [];
      for (const o of outcomes) {
        const list = await client.request<{ items: ExperimentJson[] }>(
          "GET",
          `/v1/outcomes/${encodeURIComponent(o.id)}/experiments`,
        );
        groups.push({
          outcome: o.slug,
          items: list.items.filter((e) => opts.state === undefined || e.state === opts.state),
        });
      }
      if (options.json) outJson({ items: groups.flatMap((g) => g.items) });
      else out(renderExperiments.list(groups, stdoutColors(), opts.state));
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

  return experiments;
}
