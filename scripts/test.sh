#!/usr/bin/env bash
# Quickstart, command 2: install what is needed, start Postgres and Redis if
# they are not running, then lint, type-check and run every test against them.
# With OUTCOME_RUNTIME_SETUP_DONE=1 (exported by .ci/run, which has just done
# it) the setup is skipped.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/setup.sh"
if [ "${OUTCOME_RUNTIME_SETUP_DONE:-}" = 1 ]; then
  log "setup already done (OUTCOME_RUNTIME_SETUP_DONE=1)"
else
  setup_all
  ensure_database outcome_runtime_test
fi
# The dashboard's browser tests drive Debian's Chromium.
ensure_chromium
# docker-compose.yml is validated with `docker-compose config`.
ensure_docker_compose
export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://$POSTGRES_USER@$POSTGRES_HOST:$POSTGRES_PORT}"
cd "$ROOT"
log "lint, types, generated types"
pnpm --silent check
bash scripts/lint-dockerfile.sh
log "build the dashboard (the browser tests use it)"
pnpm --silent build >/dev/null
log "tests"
mkdir -p .tmp
# Never summarise the report of an earlier run.
rm -f .tmp/vitest-report.json
status=0
pnpm --silent test --reporter=default --reporter=json --outputFile.json=.tmp/vitest-report.json "$@" || status=$?
# One plain closing line, whatever the reporter printed above.
if [ -f .tmp/vitest-report.json ]; then
  node -e 'const r = require(process.argv[1]);
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));' \
    "$ROOT/.tmp/vitest-report.json"
else
  echo "no test report: vitest stopped before writing one (its output is above)"
fi
exit "$status"
