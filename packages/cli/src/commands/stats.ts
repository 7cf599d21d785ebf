/**
 * `outcome-runtime stats …`: the statistics of packages/stats on exported
 * data, offline (no API needed).
 *
 *   outcome-runtime stats sequential --input snapshots.json
 *   cat snapshots.json | outcome-runtime stats sequential --input -
 *
 * Prints `{ "tau2", "tau2_source", "results": [...] }` as JSON and exits 0;
 * a file that cannot be read, is not JSON or breaks the format prints
 * compiler-style errors (`file:line:col: error[code]: message`, then a hint)
 * and exits 1 (with `--json`, `{ ok: false, errors }` on standard output).
 */
import { readFile } from "node:fs/promises";
import { type Diagnostic, formatDiagnostics } from "@outcome-runtime/spec";
import { Command } from "commander";
import { useColor } from "../output";
import { runSequentialReport, validateSequentialReportInput } from "../sequential-report";

const STDIN_NAME = "<stdin>";

function out(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString("utf8");
}

async function readInput(file: string): Promise<{ text: string } | { error: string }> {
  // A byte-order mark is not JSON; editors on some systems add one.
  if (file === "-") return { text: (await readStdin()).replace(/^\uFEFF/, "") };
  try {
    return { text: (await readFile(file, "utf8")).replace(/^\uFEFF/, "") };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return {
      error:
        code === "ENOENT"
          ? `${file}: no such file`
          : code === "EISDIR"
            ? `${file}: is a directory; give a JSON file of snapshots`
            : `${file}: cannot read (${code ?? String(error)})`,
    };
  }
}

/** 1-based line and column of a character offset. */
function position(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lines = before.split("\n");
  return { line: lines.length, column: (lines.at(-1)?.length ?? 0) + 1 };
}

/**
 * Offset in valid JSON text of the value a JSON pointer designates (of its key
 * when `atKey`, for an unknown key), or of the nearest enclosing value that
 * exists (for a missing field, the object that lacks it).
 */
function locate(text: string, pointer: string, atKey: boolean): number {
  const segments =
    pointer === ""
      ? []
      : pointer
          .slice(1)
          .split("/")
          .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\r\n".includes(text[i] as string)) i++;
  };
  const skipString = () => {
    i++; // opening quote
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i++;
  };
  const skipValue = (): void => {
    ws();
    const ch = text[i];
    if (ch === '"') {
      skipString();
      return;
    }
    if (ch === "{" || ch === "[") {
      const close = ch === "{" ? "}" : "]";
      i++;
      ws();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (ch === "{") {
          ws();
          skipString();
          ws();
          i++; // colon
        }
        skipValue();
        ws();
        if (text[i] === ",") i++;
        else {
          i++;
          return;
        }
      }
    }
    while (i < text.length && !",}] \t\r\n".includes(text[i] as string)) i++;
  };
  ws();
  for (const segment of segments) {
    const start = i;
    const ch = text[i];
    if (ch === "{") {
      i++;
      let found = false;
      for (;;) {
        ws();
        if (text[i] !== '"') break;
        const keyStart = i;
        skipString();
        const key = JSON.parse(text.slice(keyStart, i)) as string;
        ws();
        i++; // colon
        ws();
        if (key === segment) {
          found = true;
          if (atKey && segment === segments.at(-1)) return keyStart;
          break;
        }
        skipValue();
        ws();
        if (text[i] === ",") i++;
        else break;
      }
      if (!found) return start;
    } else if (ch === "[") {
      i++;
      const index = Number(segment);
      let n = 0;
      ws();
      if (text[i] === "]") return start;
      while (n < index) {
        skipValue();
        ws();
        if (text[i] !== ",") return start;
        i++;
        n++;
      }
      ws();
    } else {
      return start;
    }
  }
  return i;
}

function jsonSyntaxDiagnostic(file: string, text: string, error: unknown): Diagnostic {
  const raw = error instanceof Error ? error.message : String(error);
  // V8 gives "… in JSON at position N", or "Unexpected token 'x', "…" is not valid JSON", or "Unexpected end".
  const at = /position (\d+)/.exec(raw);
  const token = /^Unexpected token '(.)'/.exec(raw);
  const offset = at ? Number(at[1]) : token ? Math.max(0, text.indexOf(token[1] as string)) : text.length;
  const message = raw
    .replace(/ in JSON at position \d+.*$/s, "")
    .replace(/, ".*" is not valid JSON$/s, "")
    .replace(/\s+/g, " ");
  return {
    file,
    ...position(text, offset),
    pointer: "",
    code: "json_syntax",
    message: `not valid JSON: ${message}`,
    hint: 'the input is a JSON object: { "metric": "proportion", "snapshots": [ ... ] }; see docs/statistics.md',
  };
}

function fail(diagnostics: Diagnostic[], json: boolean): void {
  if (json) out(JSON.stringify({ ok: false, errors: diagnostics }, null, 2));
  else process.stderr.write(`${formatDiagnostics(diagnostics, { color: useColor(process.stderr) })}\n`);
  process.exitCode = 1;
}

/**
 * The `stats` command group. `globals` returns the program's global options
 * (`--json` changes how errors are printed; results are always JSON).
 */
export function statsCommand(globals: () => { json?: boolean }): Command {
  const stats = new Command("stats")
    .description("statistics on exported experiment data, offline")
    .addHelpText("after", "\nExamples:\n  $ outcome-runtime stats sequential --input snapshots.json");
  stats
    .command("sequential")
    .description(
      "always-valid analysis (mSPRT) of cumulative snapshots — two or more arms, CUPED, ratio metrics: effect, confidence sequence, p-values, SRM and a decision per snapshot",
    )
    .requiredOption("--input <file>", 'JSON file of snapshots, or "-" for standard input')
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ outcome-runtime stats sequential --input docs/examples/sequential-input.json",
        "  $ outcome-runtime stats sequential --input docs/examples/sequential-3-arms.json   # several treatments (Holm)",
        "  $ outcome-runtime stats sequential --input docs/examples/sequential-cuped.json    # a covariate (CUPED)",
        "  $ outcome-runtime stats sequential --input docs/examples/sequential-ratio.json    # a ratio metric",
        "  $ cat snapshots.json | outcome-runtime stats sequential --input -",
        "",
        "The input format and the output are described in docs/statistics.md.",
      ].join("\n"),
    )
    .action(async (opts: { input: string }) => {
      const json = globals().json === true;
      const file = opts.input === "-" ? STDIN_NAME : opts.input;
      const read = await readInput(opts.input);
      if ("error" in read) {
        if (json) out(JSON.stringify({ ok: false, error: read.error }, null, 2));
        else process.stderr.write(`error: ${read.error}\n`);
        process.exitCode = 1;
        return;
      }
      let value: unknown;
      try {
        value = JSON.parse(read.text);
      } catch (error) {
        fail([jsonSyntaxDiagnostic(file, read.text, error)], json);
        return;
      }
      const checked = validateSequentialReportInput(value);
      if (!checked.ok) {
        const diagnostics: Diagnostic[] = checked.errors.map((e) => ({
          file,
          ...position(read.text, locate(read.text, e.path, e.code === "unknown_key")),
          pointer: e.path,
          code: e.code,
          message: e.message,
          ...(e.hint === undefined ? {} : { hint: e.hint }),
        }));
        diagnostics.sort((a, b) => a.line - b.line || a.column - b.column);
        fail(diagnostics, json);
        return;
      }
      out(JSON.stringify(runSequentialReport(checked.input), null, 2));
    });
  return stats;
}
