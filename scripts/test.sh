#!/usr/bin/env bash
# Quickstart, command 2: install what is needed, start Postgres and Redis if
# they are not running, then lint, type-check and run every test against them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/setup.sh"
setup_all
ensure_database outcome_runtime_test
export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://$POSTGRES_USER@$POSTGRES_HOST:$POSTGRES_PORT}"
cd "$ROOT"
log "lint, types, generated types"
pnpm --silent check
log "tests"
exec pnpm --silent test "$@"
