#!/usr/bin/env bash
# Quickstart, command 1: install what is needed, start Postgres and Redis if
# they are not running, then run the end-to-end demo (`pnpm demo`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/setup.sh"
setup_all
ensure_database outcome_runtime
export DATABASE_URL="${DATABASE_URL:-postgres://$POSTGRES_USER@$POSTGRES_HOST:$POSTGRES_PORT/outcome_runtime}"
cd "$ROOT"
# The dashboard, so the API can serve it at / when the demo is done.
log "building the dashboard"
pnpm --silent build >/dev/null
exec pnpm --silent demo "$@"
