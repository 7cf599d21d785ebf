/**
 * The machine and software a benchmark run measured, for the report.
 */
import { execFileSync } from "node:child_process";
import os from "node:os";
import type { Redis } from "ioredis";
import { postgresFacts } from "./bench-database";

export interface MachineFacts {
  readonly date: string;
  readonly cpu: string;
  readonly cpus: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly node: string;
  readonly postgres: string;
  readonly postgresSettings: Readonly<Record<string, string>>;
  readonly redis: string;
  readonly signalStorage: "timescaledb" | "plain";
  /** Short commit, with "+ uncommitted changes" when the tree is dirty; null outside a git checkout. */
  readonly commit: string | null;
}

function commitOf(): string | null {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
    const dirty =
      execFileSync("git", ["status", "--porcelain"], { stdio: ["ignore", "pipe", "ignore"] })
        .toString()
        .trim() !== "";
    return dirty ? `${head} + uncommitted changes` : head;
  } catch {
    return null;
  }
}

async function redisVersion(redis: Redis): Promise<string> {
  const info = await redis.info("server");
  return /^redis_version:(.+)$/m.exec(info)?.[1]?.trim() ?? "?";
}

export async function machineFacts(redis: Redis, signalStorage: "timescaledb" | "plain"): Promise<MachineFacts> {
  const cpus = os.cpus();
  const pg = await postgresFacts();
  return {
    date: new Date().toISOString(),
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cpus: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    postgres: pg.version,
    postgresSettings: pg.settings,
    redis: await redisVersion(redis),
    signalStorage,
    commit: commitOf(),
  };
}
