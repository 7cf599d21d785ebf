/**
 * docker/Dockerfile without Docker: a parser of the instructions this project
 * uses, a `.dockerignore` matcher with Docker's rules, and a replay of the
 * stages into folders of a temporary directory. Each stage gets a folder that
 * stands for its filesystem root (`<into>/<stage>/`); COPY copies what Docker
 * would copy (from the build context less `.dockerignore`, or from another
 * stage), in the same order; RUN runs its `pnpm` commands there with the
 * machine's pnpm and pnpm store. What only touches the system (apt-get, the
 * global pnpm install, the state directory) is not replayed; a RUN command the
 * replay does not know is an error, so a new build step cannot be skipped
 * silently.
 */
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { dirname, join, posix } from "node:path";

interface Instruction {
  /** Upper case: FROM, RUN, COPY, ... */
  readonly keyword: string;
  /** Everything after the keyword, continuation lines joined. */
  readonly args: string;
  /** 1-based line of the keyword in the Dockerfile. */
  readonly line: number;
}

interface Stage {
  /** The `AS` name, or the stage's index. */
  readonly name: string;
  /** The image or the earlier stage it starts from, build arguments substituted. */
  readonly from: string;
  readonly instructions: readonly Instruction[];
}

export interface Dockerfile {
  /** Build arguments declared before the first FROM, with their defaults. */
  readonly args: Readonly<Record<string, string>>;
  readonly stages: readonly Stage[];
}

/** Replace `$NAME` and `${NAME}` from `vars` (an unknown name becomes empty, as Docker does). */
function substitute(text: string, vars: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_m, a, b) => vars[a ?? b] ?? "");
}

/**
 * Parse a Dockerfile: comments and parser directives dropped, `\` continuation
 * lines joined (comment lines inside them skipped, as Docker does), one stage
 * per FROM.
 */
export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]!.trim();
    if (first === "" || first.startsWith("#")) continue;
    const start = i;
    let joined = first;
    while (joined.endsWith("\\") && i + 1 < lines.length) {
      joined = joined.slice(0, -1);
      i++;
      const next = lines[i]!.trim();
      if (next.startsWith("#")) continue;
      joined += ` ${next}`;
    }
    const match = /^(\S+)\s*(.*)$/s.exec(joined)!;
    instructions.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: start + 1 });
  }
  const args: Record<string, string> = {};
  const stages: { name: string; from: string; instructions: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const words = instruction.args.split(/\s+/).filter((w) => !w.startsWith("--platform="));
      const from = substitute(words[0] ?? "", args);
      const name = words[1]?.toUpperCase() === "AS" ? (words[2] ?? "") : String(stages.length);
      stages.push({ name, from, instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword !== "ARG")
        throw new Error(`line ${instruction.line}: ${instruction.keyword} before FROM`);
      const [name, ...value] = instruction.args.split("=");
      args[name!.trim()] = value.join("=").trim();
    } else {
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  return { args, stages };
}

/** The JSON array of an exec-form instruction (ENTRYPOINT, CMD, RUN). */
function execForm(instruction: Instruction): string[] {
  if (!instruction.args.startsWith("[")) {
    throw new Error(`line ${instruction.line}: ${instruction.keyword} is not in exec form`);
  }
  return JSON.parse(instruction.args) as string[];
}

/** The exec-form ENTRYPOINT and CMD of a stage (default: the last, the image). */
export function entrypointAndCmd(dockerfile: Dockerfile, stage?: string): { entrypoint: string[]; cmd: string[] } {
  const target = stage === undefined ? dockerfile.stages.at(-1) : dockerfile.stages.find((s) => s.name === stage);
  if (target === undefined) throw new Error(`no stage ${stage ?? "at all"}`);
  const last = (keyword: string): string[] => {
    const found = target.instructions.filter((i) => i.keyword === keyword).at(-1);
    if (found === undefined) throw new Error(`stage ${target.name} has no ${keyword}`);
    return execForm(found);
  };
  return { entrypoint: last("ENTRYPOINT"), cmd: last("CMD") };
}

/** Shell-like words: whitespace-separated, single and double quotes removed, `\` escapes in double quotes. */
function shellWords(text: string): string[] {
  const words: string[] = [];
  let current: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new Error(`unterminated quote in: ${text}`);
      const inner = text.slice(i + 1, end);
      current = (current ?? "") + (c === '"' ? inner.replace(/\\(["\\$`])/g, "$1") : inner);
      i = end;
    } else if (/\s/.test(c)) {
      if (current !== null) words.push(current);
      current = null;
    } else {
      current = (current ?? "") + c;
    }
  }
  if (current !== null) words.push(current);
  return words;
}

/** ENV's `k=v k2="v 2"` (or the legacy `ENV k v`), `$VAR` expanded from `env`. */
function parseEnv(args: string, env: Readonly<Record<string, string>>): Record<string, string> {
  const words = shellWords(args);
  if (words.length === 2 && !words[0]!.includes("=")) return { [words[0]!]: substitute(words[1]!, env) };
  const out: Record<string, string> = {};
  for (const word of words) {
    const eq = word.indexOf("=");
    if (eq <= 0) throw new Error(`ENV ${args}: expected NAME=value`);
    out[word.slice(0, eq)] = substitute(word.slice(eq + 1), env);
  }
  return out;
}

// --- .dockerignore -------------------------------------------------------------

/** A `.dockerignore` pattern (Go's filepath.Match, plus `**` for any number of directories) as a RegExp. */
function patternToRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*" && pattern[i + 1] === "*") {
      i++;
      if (pattern[i + 1] === "/") {
        i++;
        re += "(?:.*/)?";
      } else {
        re += ".*";
      }
    } else if (c === "*") {
      re += "[^/]*";
    } else if (c === "?") {
      re += "[^/]";
    } else if (c === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) throw new Error(`.dockerignore: unterminated [ in ${pattern}`);
      re += `[${pattern.slice(i + 1, end).replace(/^!/, "^")}]`;
      i = end;
    } else if (c === "\\" && i + 1 < pattern.length) {
      i++;
      re += pattern[i]!.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    } else {
      re += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    }
  }
  return new RegExp(`^${re}$`);
}

/**
 * Docker's `.dockerignore` rules (moby/patternmatcher): one pattern a line,
 * `#` comments, patterns cleaned and relative to the context root, and a
 * pattern that matches a directory matches everything under it. Exceptions
 * (`!pattern`) are refused: re-including a path under an excluded directory
 * would need the copy to descend into it, and the project uses none.
 */
export function dockerignore(text: string): { excludes(path: string): boolean } {
  const patterns: RegExp[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("!")) throw new Error(`.dockerignore: exceptions (${line}) are not replayed`);
    const cleaned = posix.normalize(line).replace(/^\/+/, "").replace(/\/+$/, "");
    if (cleaned === "" || cleaned === ".") continue;
    patterns.push(patternToRegExp(cleaned));
  }
  return {
    excludes(path: string): boolean {
      const parts = path.split("/");
      return patterns.some((pattern) => parts.some((_, i) => pattern.test(parts.slice(0, i + 1).join("/"))));
    },
  };
}

// --- copying -------------------------------------------------------------------

/** Copy `from` (a file, a symlink or a directory's contents) onto `to`, replacing files rather than writing into them. */
function copyTree(from: string, to: string, skip: (relative: string) => boolean, relative = ""): void {
  const stat = lstatSync(from);
  if (stat.isDirectory()) {
    mkdirSync(to, { recursive: true });
    for (const entry of readdirSync(from)) {
      const rel = relative === "" ? entry : `${relative}/${entry}`;
      if (skip(rel)) continue;
      copyTree(join(from, entry), join(to, entry), skip, rel);
    }
    return;
  }
  mkdirSync(dirname(to), { recursive: true });
  rmSync(to, { force: true, recursive: true });
  if (stat.isSymbolicLink()) symlinkSync(readlinkSync(from), to);
  else copyFileSync(from, to);
}

/**
 * A directory's contents from one stage into another, as hard links (the
 * stages' files are never written in place: every copy replaces), so a stage
 * of hundreds of megabytes is copied in a moment.
 */
function linkTree(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  const cp = spawnSync("cp", ["-a", "--link", "--remove-destination", `${from}/.`, `${to}/`], { encoding: "utf8" });
  if (cp.status !== 0) throw new Error(`cp -a --link ${from} ${to}: ${cp.stderr}`);
}

// --- the replay ----------------------------------------------------------------

export interface ReplayOptions {
  /** The Dockerfile's text. */
  readonly dockerfile: string;
  /** The `.dockerignore`'s text. */
  readonly dockerignore: string;
  /** The build context (the repository). */
  readonly context: string;
  /** An empty folder for the stages. */
  readonly into: string;
  /** The pnpm store the image's store stands for (the machine's, so nothing is downloaded twice). */
  readonly storeDir: string;
  /** The pnpm version the machine runs; the Dockerfile's global install must name it. */
  readonly pnpmVersion: string;
  /** Called with each step as it is replayed. */
  readonly log?: (line: string) => void;
  /** Stages not replayed, and the COPY --from them (e.g. the dashboard, when only the processes' start matters). */
  readonly skip?: readonly string[];
}

interface ReplayedStage {
  readonly name: string;
  /** The folder standing for the stage's filesystem root. */
  readonly root: string;
  /** WORKDIR, as a path inside the image. */
  readonly workdir: string;
  /** ENV, as the stage's processes get it. */
  readonly env: Readonly<Record<string, string>>;
  /** A path inside the image → the folder that stands for it. */
  path(inImage: string): string;
}

export interface Replayed {
  readonly stages: ReadonlyMap<string, ReplayedStage>;
  /** The last stage: the image. */
  readonly image: ReplayedStage;
  readonly entrypoint: string[];
  readonly cmd: string[];
}

/**
 * RUN commands that change only the system, not the application folder, and
 * so are not replayed: the base image's packages (tini), and the state
 * directory (each test gives the processes one of its own).
 */
const SYSTEM_ONLY: readonly RegExp[] = [
  /^apt-get (update|install) /,
  /^apt-get update$/,
  /^rm -rf \/var\/lib\/apt\/lists\/\*$/,
  /^mkdir -p \/var\/lib\/outcome-runtime$/,
  /^chown node:node \/var\/lib\/outcome-runtime$/,
];

function run(
  argv: readonly string[],
  cwd: string,
  env: Record<string, string>,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, output }));
  });
}

/** The environment of a replayed RUN: the machine's PATH and HOME, the stage's ENV less what points into the image, the store. */
function runEnv(stageEnv: Readonly<Record<string, string>>, storeDir: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(stageEnv)) {
    // PNPM_HOME and PATH name the image's /pnpm: the machine's pnpm and store stand for them.
    if (name !== "PNPM_HOME" && name !== "PATH") env[name] = value;
  }
  for (const name of ["PATH", "HOME", "TMPDIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  env.npm_config_store_dir = storeDir;
  return env;
}

/** Replay every stage of the Dockerfile, in order, into `options.into`. */
export async function replayDockerfile(options: ReplayOptions): Promise<Replayed> {
  const dockerfile = parseDockerfile(options.dockerfile);
  const ignore = dockerignore(options.dockerignore);
  const log = options.log ?? (() => {});
  const stages = new Map<string, ReplayedStage>();

  for (const [index, stage] of dockerfile.stages.entries()) {
    if (options.skip?.includes(stage.name)) {
      log(`FROM ${stage.from} AS ${stage.name} (skipped)`);
      continue;
    }
    const root = join(options.into, `${index}-${stage.name}`);
    const parent = stages.get(stage.from);
    let workdir = parent?.workdir ?? "/";
    const env: Record<string, string> = { ...(parent?.env ?? {}) };
    const path = (inImage: string) => join(root, posix.resolve(workdir, inImage));
    mkdirSync(root, { recursive: true });
    if (parent !== undefined) linkTree(parent.root, root);
    log(`FROM ${stage.from} AS ${stage.name}`);

    for (const instruction of stage.instructions) {
      const where = `docker/Dockerfile:${instruction.line}`;
      switch (instruction.keyword) {
        case "ENV":
          Object.assign(env, parseEnv(instruction.args, env));
          break;
        case "WORKDIR":
          workdir = posix.resolve(workdir, substitute(instruction.args, env));
          mkdirSync(join(root, workdir), { recursive: true });
          break;
        case "COPY": {
          const words = shellWords(instruction.args);
          const flags = words.filter((w) => w.startsWith("--"));
          const rest = words.filter((w) => !w.startsWith("--"));
          const fromFlag = flags.find((f) => f.startsWith("--from="))?.slice("--from=".length);
          const unknown = flags.filter((f) => !/^--(from|chown|chmod)=/.test(f));
          if (unknown.length > 0) throw new Error(`${where}: COPY ${unknown.join(" ")} is not replayed`);
          const dest = rest.pop();
          if (dest === undefined || rest.length === 0)
            throw new Error(`${where}: COPY needs a source and a destination`);
          const target = join(root, posix.resolve(workdir, dest));
          for (const source of rest) {
            if (fromFlag !== undefined && options.skip?.includes(fromFlag)) {
              log(`COPY ${instruction.args} (skipped)`);
            } else if (fromFlag !== undefined) {
              const from = stages.get(fromFlag);
              if (from === undefined) throw new Error(`${where}: COPY --from=${fromFlag}: no such stage before`);
              const src = join(from.root, posix.resolve("/", source));
              if (lstatSync(src).isDirectory()) linkTree(src, target);
              else
                copyTree(
                  src,
                  dest.endsWith("/") || rest.length > 1 ? join(target, posix.basename(source)) : target,
                  () => false,
                );
            } else {
              const rel = posix
                .normalize(source)
                .replace(/^\.?\/+/, "")
                .replace(/\/+$/, "");
              if (rel.startsWith("..")) throw new Error(`${where}: COPY ${source} leaves the context`);
              if (rel !== "." && rel !== "" && ignore.excludes(rel)) {
                throw new Error(`${where}: COPY ${source}: excluded by .dockerignore`);
              }
              const src = rel === "." || rel === "" ? options.context : join(options.context, rel);
              const prefix = rel === "." || rel === "" ? "" : `${rel}/`;
              const skip = (relative: string) => ignore.excludes(prefix + relative);
              if (lstatSync(src).isDirectory()) copyTree(src, target, skip);
              else
                copyTree(src, dest.endsWith("/") || rest.length > 1 ? join(target, posix.basename(rel)) : target, skip);
            }
          }
          log(`COPY ${instruction.args}`);
          break;
        }
        case "RUN": {
          const commands = shellWords(instruction.args);
          if (commands.some((w) => w === ";" || w === "|" || w === "||")) {
            throw new Error(`${where}: RUN with ; | or || is not replayed: ${instruction.args}`);
          }
          const parts: string[][] = [[]];
          for (const word of commands) {
            if (word === "&&") parts.push([]);
            else parts.at(-1)!.push(word);
          }
          for (const argv of parts) {
            const text = argv.join(" ");
            const pnpmPin = /^npm install --global pnpm@(\S+)$/.exec(text);
            if (pnpmPin !== null) {
              if (pnpmPin[1] !== options.pnpmVersion) {
                throw new Error(
                  `${where}: the image installs pnpm ${pnpmPin[1]}, the replay runs ${options.pnpmVersion}`,
                );
              }
              log(`RUN ${text} (the machine's pnpm ${options.pnpmVersion})`);
              continue;
            }
            if (SYSTEM_ONLY.some((re) => re.test(text))) {
              log(`RUN ${text} (system only: not replayed)`);
              continue;
            }
            if (argv[0] !== "pnpm") throw new Error(`${where}: the replay does not know how to run: ${text}`);
            // Docker's own store starts empty; the machine's has every package already.
            const replayed = argv[1] === "fetch" ? [...argv, "--prefer-offline"] : [...argv];
            const started = Date.now();
            const result = await run(replayed, join(root, workdir), runEnv(env, options.storeDir));
            log(`RUN ${replayed.join(" ")} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
            if (result.code !== 0) throw new Error(`${where}: ${text} exited ${result.code}:\n${result.output}`);
          }
          break;
        }
        case "ARG":
        case "USER":
        case "EXPOSE":
        case "HEALTHCHECK":
        case "ENTRYPOINT":
        case "CMD":
        case "LABEL":
          break;
        default:
          throw new Error(`${where}: ${instruction.keyword} is not replayed`);
      }
    }
    const replayed: ReplayedStage = { name: stage.name, root, workdir, env: { ...env }, path };
    stages.set(stage.name, replayed);
  }
  const image = [...stages.values()].at(-1);
  if (image === undefined) throw new Error("the Dockerfile has no stage");
  return { stages, image, ...entrypointAndCmd(dockerfile) };
}
