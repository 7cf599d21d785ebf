/**
 * The compose file's services as local processes: read docker-compose.yml and
 * docker/Dockerfile, resolve `${VAR:-default}` the way compose does, and spawn
 * the commands the images run (without tini, which only forwards signals).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "@outcome-runtime/testing";
import { entrypointAndCmd, parseDockerfile } from "./dockerfile";

export const root = fileURLToPath(new URL("../..", import.meta.url));

// `yaml` is a dependency of the packages that read outcome.yaml, not of the root: resolve it from one.
const { parse, parseAllDocuments } = createRequire(join(root, "packages/spec/package.json"))("yaml") as {
  parse(source: string): unknown;
  parseAllDocuments(source: string): { errors: unknown[]; toJS(): unknown }[];
};

/** Every document of a multi-document YAML file; throws on a syntax error. */
export function parseAll(source: string): unknown[] {
  return parseAllDocuments(source).map((doc) => {
    if (doc.errors.length > 0) throw new Error(String(doc.errors[0]));
    return doc.toJS();
  });
}

export interface ComposeService {
  readonly image?: string;
  readonly command?: readonly string[];
  readonly environment?: Record<string, string | number | boolean | null>;
  readonly healthcheck?: { test: readonly string[] };
  readonly depends_on?: Record<string, { condition: string }>;
  readonly ports?: readonly string[];
  readonly volumes?: readonly string[];
  /** Profiles the service belongs to: started only with `--profile`. */
  readonly profiles?: readonly string[];
  readonly build?: { readonly context: string; readonly dockerfile: string; readonly target?: string };
}

export interface ComposeFile {
  readonly services: Record<string, ComposeService>;
  readonly volumes?: Record<string, unknown>;
}

export function readCompose(): ComposeFile {
  return parse(readFileSync(join(root, "docker-compose.yml"), "utf8")) as ComposeFile;
}

/** The exec-form ENTRYPOINT and CMD of the Dockerfile's last stage (the image). */
export function readDockerfile(): { entrypoint: string[]; cmd: string[] } {
  return entrypointAndCmd(parseDockerfile(readFileSync(join(root, "docker/Dockerfile"), "utf8")));
}

/**
 * Compose's interpolation: `${VAR}`, `${VAR:-default}` (default when unset or
 * empty), `${VAR-default}` (default when unset), `$VAR` and `$$`.
 */
export function interpolate(value: string, env: Readonly<Record<string, string | undefined>>): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (match, braced: string | undefined, op: string | undefined, fallback: string | undefined, bare) => {
      if (match === "$$") return "$";
      const name = (braced ?? bare) as string;
      const current = env[name];
      if (op === ":-") return current === undefined || current === "" ? (fallback ?? "") : current;
      if (op === "-") return current === undefined ? (fallback ?? "") : current;
      return current ?? "";
    },
  );
}

/** A service's environment as compose hands it to the container, given the `.env` values. */
export function serviceEnvironment(
  service: ComposeService,
  dotenv: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(service.environment ?? {})) {
    out[name] = value === null ? "" : interpolate(String(value), dotenv);
  }
  return out;
}

export interface Process {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
  isGone(): boolean;
}

/**
 * Spawn `argv` in `app` (default: the repository), which stands for the
 * image's `/app/`, with exactly `env` (plus PATH and HOME). `register` gets a
 * cleanup that SIGKILLs the process if it is still running.
 */
export function spawnProcess(
  argv: readonly string[],
  env: Record<string, string>,
  register: (cleanup: () => Promise<void>) => void,
  app: string = root,
): Process {
  const home = app.endsWith("/") ? app : `${app}/`;
  const [command, ...args] = argv.map((a) => a.replace(/^\/app\//, home));
  const child = spawn(command === "node" ? process.execPath : command!, args, {
    cwd: app,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-40_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let gone = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      gone = true;
      resolve({ code, signal });
    }),
  );
  register(async () => {
    if (!gone && child.pid !== undefined) {
      process.kill(child.pid, "SIGKILL");
      await exited;
    }
  });
  return { child, exited, output: () => log, isGone: () => gone };
}

/** Wait until GET `url` answers 200, failing early if the process exits. */
export function waitHealthy(proc: Process, url: string, timeoutMs = 60_000): Promise<Response> {
  return waitFor(
    `${url} to answer 200`,
    async () => {
      if (proc.isGone()) throw new Error(`the process exited before ${url} answered 200:\n${proc.output()}`);
      const response = await fetch(url).catch(() => null);
      return response?.status === 200 ? response : undefined;
    },
    { timeoutMs, intervalMs: 50, diagnostics: proc.output },
  );
}

/** SIGTERM and the exit, within `timeoutMs`. */
export async function terminate(
  proc: Process,
  timeoutMs = 15_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  proc.child.kill("SIGTERM");
  const result = await Promise.race([
    proc.exited,
    new Promise<null>((resolve) => setTimeout(() => resolve(null), timeoutMs).unref()),
  ]);
  if (result === null) throw new Error(`no exit within ${timeoutMs} ms of SIGTERM:\n${proc.output()}`);
  return result;
}
