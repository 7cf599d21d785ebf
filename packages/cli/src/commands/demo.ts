/**
 * `outcome-runtime demo`: the end-to-end demo (`scripts/demo.sh`), run from
 * the repository root with this terminal as its input and output.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { CliFailure } from "../output";

/** The repository root of this checkout (packages/cli/src/commands → four levels up). */
const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
const SCRIPT = "scripts/demo.sh";

export function demoCommand(program: Command): Command {
  return program
    .command("demo")
    .description("run the end-to-end demo on real data (scripts/demo.sh from the repository root)")
    .addHelpText(
      "after",
      [
        "",
        "Runs scripts/demo.sh from the root of the Outcome Runtime repository, in this terminal:",
        "it installs what is missing, starts Postgres and Redis when none answers, then runs",
        "`pnpm demo`: the ASOS experiments through the API, the worker and the gates. The API and",
        "the worker keep running afterwards; stop them with Ctrl-C. It needs a checkout of the",
        "repository (not an installed CLI alone). The demo's exit status is this command's.",
        "",
        "Environment: DATABASE_URL, REDIS_URL, PORT (8080), WORKER_PORT (8081),",
        "DEMO_MS_PER_DAY (400: one simulated day per 0.4 s).",
        "",
        "Examples:",
        "  $ outcome-runtime demo",
        "  $ DEMO_MS_PER_DAY=100 outcome-runtime demo",
      ].join("\n"),
    )
    .action(async () => {
      if (!existsSync(`${ROOT}${SCRIPT}`)) {
        throw new CliFailure(`${SCRIPT} not found under ${ROOT}: the demo runs from a checkout of the repository`);
      }
      const child = spawn("bash", [SCRIPT], { cwd: ROOT, stdio: "inherit" });
      // The terminal sends Ctrl-C to the whole process group; only forward what is sent to us alone.
      const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
      const onTerm = forward("SIGTERM");
      process.on("SIGTERM", onTerm);
      process.on("SIGINT", () => {});
      const code = await new Promise<number>((resolve, reject) => {
        child.on("error", reject);
        // A child ended by a signal exits as a shell reports it: 128 + the signal's number.
        child.on("exit", (status, signal) =>
          resolve(status ?? 128 + (signal === null ? 0 : constants.signals[signal])),
        );
      });
      process.off("SIGTERM", onTerm);
      process.exitCode = code;
    });
}
