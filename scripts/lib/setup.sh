#!/usr/bin/env bash
# Shared setup for the Quickstart commands and CI: pnpm (pinned), dependencies,
# a running Postgres and Redis, and the databases. Safe to run again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PNPM_VERSION="$(node -p "require('$ROOT/package.json').packageManager.split('@')[1]")"
export POSTGRES_HOST="${POSTGRES_HOST:-127.0.0.1}"
export POSTGRES_PORT="${POSTGRES_PORT:-5432}"
export POSTGRES_USER="${POSTGRES_USER:-postgres}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_pnpm() {
  if command -v pnpm >/dev/null 2>&1 && [ "$(pnpm --version)" = "$PNPM_VERSION" ]; then return; fi
  log "installing pnpm $PNPM_VERSION"
  npm install --global --silent "pnpm@$PNPM_VERSION" >/dev/null
}

ensure_dependencies() {
  log "installing dependencies (pnpm install --frozen-lockfile)"
  (cd "$ROOT" && pnpm install --frozen-lockfile --reporter=silent)
}

postgres_up() { pg_isready -q -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" >/dev/null 2>&1; }
redis_up() { redis-cli -u "$REDIS_URL" ping 2>/dev/null | grep -q PONG; }

ensure_postgres() {
  if postgres_up; then return; fi
  log "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
  fi
  for _ in $(seq 1 30); do postgres_up && return; sleep 1; done
  echo "PostgreSQL is not reachable at $POSTGRES_HOST:$POSTGRES_PORT. Start it (or set POSTGRES_HOST/POSTGRES_PORT) and run again." >&2
  exit 1
}

ensure_redis() {
  if redis_up; then return; fi
  log "starting Redis"
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  for _ in $(seq 1 30); do redis_up && return; sleep 1; done
  echo "Redis is not reachable at $REDIS_URL. Start it (or set REDIS_URL) and run again." >&2
  exit 1
}

# ensure_database NAME: create the database if it does not exist.
ensure_database() {
  local name="$1"
  if ! psql -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" -U "$POSTGRES_USER" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
    log "creating database $name"
    psql -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" -U "$POSTGRES_USER" -d postgres -qc "CREATE DATABASE $name" >/dev/null
  fi
}

setup_all() {
  ensure_pnpm
  ensure_dependencies
  ensure_postgres
  ensure_redis
}
