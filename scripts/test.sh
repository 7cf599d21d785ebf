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
# /metrics is scraped by a real Prometheus; deploy/prometheus is checked with promtool.
ensure_prometheus
export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://$POSTGRES_USER@$POSTGRES_HOST:$POSTGRES_PORT}"
cd "$ROOT"
log "lint, types, generated types, unused code"
pnpm --silent check
bash scripts/lint-dockerfile.sh
log "build the dashboard (the browser tests use it)"
pnpm --silent build >/dev/null
log "tests"
mkdir -p .tmp
# Never summarise the report of an earlier run.
rm -f .tmp/vitest-report.json .tmp/vitest-fuzz-report.json
status=0
pnpm --silent test --reporter=default --reporter=json --outputFile.json=.tmp/vitest-report.json "$@" || status=$?
# The other storage path (docs/self-hosting.md, Storage): where the server has
# TimescaleDB, the run above stored signal points in hypertables; the suites
# that store and read points run again on plain tables (and the other way
# round on a server without TimescaleDB there is nothing else to run). Suites
# that cover both paths themselves (tests/signal-storage.test.ts, retention,
# learnings) are not repeated. Skipped when this script is given a filter.
STORAGE_SUITES=(
  packages/db/src/migrate.int.test.ts
  packages/db/src/export-tables.int.test.ts
  packages/runtime/src/signals/
  services/api/src/signals.int.test.ts
  tests/batch-poll.test.ts
  tests/export-import.test.ts
)
rm -f .tmp/vitest-plain-report.json .tmp/vitest-chaos-plain-report.json
timescale="$(psql -w -X -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" -U "$POSTGRES_USER" -d postgres -tAc \
  "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AND 'timescaledb' = ANY \
     (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))" 2>/dev/null || true)"
if [ "$#" -eq 0 ] && [ "$timescale" = t ]; then
  log "the storage suites again, on plain tables (TEST_SIGNAL_STORAGE=plain)"
  TEST_SIGNAL_STORAGE=plain pnpm --silent test:int --reporter=default --reporter=json \
    --outputFile.json=.tmp/vitest-plain-report.json "${STORAGE_SUITES[@]}" || status=$?
fi
# The API fuzz (vitest project "fuzz"), after the main run and never beside it,
# so its thousands of requests do not compete with the timed process tests. A
# fixed seed, so a failure replays with FC_SEED=20261201 pnpm test:fuzz. A
# filter given to this script (a path, -t) may match no fuzz test, which is no
# failure then.
log "API fuzz (FC_SEED=20261201)"
fuzz_args=("$@")
if [ "$#" -gt 0 ]; then fuzz_args+=(--passWithNoTests); fi
FC_SEED=20261201 pnpm --silent test:fuzz --reporter=default --reporter=json \
  --outputFile.json=.tmp/vitest-fuzz-report.json "${fuzz_args[@]}" || status=$?
# The fault-injection suite, shortened (docs/reliability.md): real processes
# killed, restarted and starved; it prints per scenario the faults injected and
# what was lost or duplicated. Skipped when this script is given a filter.
rm -f .tmp/vitest-chaos-report.json
if [ "$#" -eq 0 ]; then
  log "fault injection, short (pnpm chaos --short)"
  pnpm --silent chaos --short --json "$ROOT/.tmp/vitest-chaos-report.json" || status=$?
  if [ "$timescale" = t ]; then
    log "R4 and R20 (re-reads, revisions, old windows) again on plain tables"
    TEST_SIGNAL_STORAGE=plain pnpm --silent chaos --short r04 --json "$ROOT/.tmp/vitest-chaos-plain-report.json" || status=$?
  fi
fi
# One plain closing line for every run, whatever the reporters printed above.
node -e 'const fs = require("node:fs");
  let passed = 0, failed = 0, skipped = 0, found = 0;
  const failures = [];
  const runs = [["main", process.argv[1]], ["fuzz", process.argv[2]]];
  if (process.argv[4] === "0") runs.push(["fault-injection", process.argv[3]]);
  // The plain-table passes, when they ran (a server with TimescaleDB, no filter).
  for (const [name, file] of [["main (plain tables)", process.argv[5]], ["fault-injection (plain tables)", process.argv[6]]]) {
    if (fs.existsSync(file)) runs.push([name, file]);
  }
  for (const [name, file] of runs) {
    if (!fs.existsSync(file)) {
      console.log(`no ${name} test report: vitest stopped before writing one (its output is above)`);
      continue;
    }
    const r = JSON.parse(fs.readFileSync(file, "utf8"));
    passed += r.numPassedTests;
    failed += r.numFailedTests;
    skipped += r.numPendingTests;
    found++;
    // Name every failure on the last lines, where a CI log tail shows them.
    for (const suite of r.testResults ?? []) {
      const where = require("node:path").relative(process.cwd(), suite.name);
      const bad = (suite.assertionResults ?? []).filter((t) => t.status === "failed");
      if (suite.status === "failed" && bad.length === 0) {
        failures.push(`${name}: ${where}: ${String(suite.message ?? "suite failed").split("\n")[0].slice(0, 300)}`);
      }
      for (const t of bad) {
        const why = String((t.failureMessages ?? [])[0] ?? "").split("\n")[0].slice(0, 300);
        failures.push(`${name}: ${where} > ${t.fullName}: ${why}`);
      }
    }
  }
  if (failures.length > 0) console.log("failed:\n" + failures.map((f) => "  " + f).join("\n"));
  if (found > 0) console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));' \
  "$ROOT/.tmp/vitest-report.json" "$ROOT/.tmp/vitest-fuzz-report.json" "$ROOT/.tmp/vitest-chaos-report.json" "$#" \
  "$ROOT/.tmp/vitest-plain-report.json" "$ROOT/.tmp/vitest-chaos-plain-report.json"
exit "$status"
