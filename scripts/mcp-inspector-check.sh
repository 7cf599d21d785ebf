#!/usr/bin/env bash
# The official MCP Inspector CLI (@modelcontextprotocol/inspector, a root dev
# dependency), as a client independent of our code, against Outcome Runtime's
# MCP server: over stdio (`outcome-runtime mcp`, which forwards to the API)
# and over Streamable HTTP (the API's /mcp). Both ways it lists the tools and
# calls get_active_outcomes, and checks the answers. Exits non-zero on any
# failure. tests/mcp-inspector.test.ts runs it in CI.
#
# Environment (all optional):
#   MCP_CHECK_URL       base URL of a running API, e.g. http://127.0.0.1:8080.
#                       When unset, an API is started on a free port against
#                       MCP_CHECK_DATABASE_URL (default: the database
#                       outcome_runtime_mcp_check on the local Postgres, created
#                       when missing; never DATABASE_URL, whose bootstrap admin
#                       key the started API would replace) and REDIS_URL, with a
#                       generated admin key, and stopped at the end.
#   MCP_CHECK_API_KEY   an API key of that API (required with MCP_CHECK_URL).
#   MCP_CHECK_OUTCOME   a slug that get_active_outcomes must list.
#   NODE22              a Node.js >= 22 binary for the Inspector (every Inspector
#                       version needs 22). Default: `node` when it is 22 or newer,
#                       else .tmp/node22, installed there from npm's `node`
#                       package when missing. The project itself stays on the
#                       `node` of PATH: only the Inspector runs on 22.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE22_VERSION="22.23.3"
TOOLS=(get_active_outcomes get_experiment_brief claim_experiment report_experiment_built
  get_experiment_status query_learnings request_human_gate get_gate_status)

log() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'mcp-inspector-check: %s\n' "$*" >&2
  exit 1
}

NODE20="$(command -v node)" || die "node is not on PATH"
node_major() { "$1" -p 'process.versions.node.split(".")[0]'; }

# --- Node 22 for the Inspector --------------------------------------------------
if [ -z "${NODE22:-}" ]; then
  if [ "$(node_major "$NODE20")" -ge 22 ]; then
    NODE22="$NODE20"
  else
    NODE22="$ROOT/.tmp/node22/node_modules/node/bin/node"
    if [ ! -x "$NODE22" ] || [ "$("$NODE22" --version 2>/dev/null)" != "v$NODE22_VERSION" ]; then
      log "installing Node.js $NODE22_VERSION for the Inspector into .tmp/node22 (npm's node package)"
      mkdir -p "$ROOT/.tmp/node22"
      npm install --prefix "$ROOT/.tmp/node22" --no-save --no-audit --no-fund --loglevel=error \
        "node@$NODE22_VERSION" >&2 || die "could not install node@$NODE22_VERSION with npm (its error is above); set NODE22 to a Node.js 22+ binary"
    fi
  fi
fi
[ "$(node_major "$NODE22")" -ge 22 ] || die "NODE22=$NODE22 is not Node.js 22 or newer"

INSPECTOR_DIR="$ROOT/node_modules/@modelcontextprotocol/inspector"
[ -d "$INSPECTOR_DIR" ] || die "@modelcontextprotocol/inspector is not installed; run pnpm install"
INSPECTOR="$INSPECTOR_DIR/$("$NODE20" -p "require('$INSPECTOR_DIR/package.json').bin['mcp-inspector']")"
INSPECTOR_VERSION="$("$NODE20" -p "require('$INSPECTOR_DIR/package.json').version")"

WORK="$(mktemp -d)"
API_PID=""
cleanup() {
  if [ -n "$API_PID" ]; then kill "$API_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- The API -------------------------------------------------------------------
if [ -n "${MCP_CHECK_URL:-}" ]; then
  [ -n "${MCP_CHECK_API_KEY:-}" ] || die "MCP_CHECK_URL is set but MCP_CHECK_API_KEY is not"
  URL="${MCP_CHECK_URL%/}"
  KEY="$MCP_CHECK_API_KEY"
else
  # shellcheck source=lib/setup.sh
  source "$ROOT/scripts/lib/setup.sh"
  if [ -z "${MCP_CHECK_DATABASE_URL:-}" ]; then
    require_clients
    ensure_database outcome_runtime_mcp_check
  fi
  PORT="$("$NODE20" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
  URL="http://127.0.0.1:$PORT"
  KEY="ork_$("$NODE20" -p 'require("crypto").randomBytes(24).toString("base64url")')"
  log "starting the API on $URL (log: $WORK/api.log)"
  (
    cd "$ROOT"
    DATABASE_URL="${MCP_CHECK_DATABASE_URL:-postgres://$POSTGRES_USER@$POSTGRES_HOST:$POSTGRES_PORT/outcome_runtime_mcp_check}" \
      REDIS_URL="$REDIS_URL" PORT="$PORT" HOST=127.0.0.1 OUTCOME_RUNTIME_API_KEY="$KEY" \
      OUTCOME_RUNTIME_PUBLIC_URL="$URL" LOG_LEVEL=warn \
      exec "$NODE20" --import tsx services/api/src/server.ts
  ) >"$WORK/api.log" 2>&1 &
  API_PID=$!
  for _ in $(seq 1 150); do
    if "$NODE20" -e 'fetch(process.argv[1]).then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))' "$URL/readyz"; then
      break
    fi
    kill -0 "$API_PID" 2>/dev/null || { cat "$WORK/api.log" >&2; die "the API exited while starting"; }
    sleep 0.2
  done
fi

# --- The Inspector ---------------------------------------------------------------
# It runs with a HOME of its own, so it keeps no catalog or tokens in the user's.
inspector() {
  HOME="$WORK/home" MCP_AUTO_OPEN_ENABLED=false "$NODE22" "$INSPECTOR" --cli --format json --connect-timeout 30000 "$@"
}
STDIO_SERVER=(-e "OUTCOME_RUNTIME_URL=$URL" -e "OUTCOME_RUNTIME_API_KEY=$KEY"
  -- "$NODE20" "$ROOT/packages/cli/bin/outcome-runtime.mjs" mcp)
HTTP_SERVER=("$URL/mcp" --transport http --header "Authorization: Bearer $KEY")
mkdir -p "$WORK/home"

# Check the JSON answer of tools/list ($1 file) or tools/call ($1 file) and print a summary line.
check_list() {
  "$NODE20" -e '
    const want = process.argv[2].split(" ");
    const body = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const tools = body.result?.tools ?? [];
    const names = tools.map((t) => t.name);
    const missing = want.filter((n) => !names.includes(n));
    if (missing.length > 0 || names.length !== want.length) {
      console.error(`tools/list: expected ${want.join(", ")}; got ${names.join(", ") || JSON.stringify(body)}`);
      process.exit(1);
    }
    for (const t of tools) {
      const a = t.annotations ?? {};
      const unset = ["readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"].filter((h) => typeof a[h] !== "boolean");
      if (unset.length > 0 || !t.outputSchema) {
        console.error(`tools/list: ${t.name} lacks ${unset.concat(t.outputSchema ? [] : ["outputSchema"]).join(", ")}`);
        process.exit(1);
      }
    }
    console.log(names.join(" "));
  ' "$1" "${TOOLS[*]}"
}
check_call() {
  "$NODE20" -e '
    const body = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const result = body.result;
    const outcomes = result?.structuredContent?.outcomes;
    if (!result || result.isError || !Array.isArray(outcomes)) {
      console.error(`tools/call get_active_outcomes: unexpected answer ${JSON.stringify(body)}`);
      process.exit(1);
    }
    const want = process.argv[2];
    if (want && !outcomes.some((o) => o.slug === want)) {
      console.error(`tools/call get_active_outcomes: ${want} is not listed: ${JSON.stringify(outcomes.map((o) => o.slug))}`);
      process.exit(1);
    }
    console.log(`${outcomes.length} active outcome(s)${outcomes.length ? ": " + outcomes.map((o) => o.slug).join(" ") : ""}`);
  ' "$1" "${MCP_CHECK_OUTCOME:-}"
}

run_check() {
  local name="$1"
  shift
  local -a server=("$@")
  log "Inspector $INSPECTOR_VERSION over $name: tools/list"
  # --strict: exit 6 on a tool schema that is not portable across clients (warnings are allowed; they are
  # the `["number", "null"]` types of nullable output fields).
  inspector --method tools/list --strict "${server[@]}" >"$WORK/$name-list.json" 2>"$WORK/$name-list.err" || {
    local status=$?
    cat "$WORK/$name-list.err" >&2
    die "$name: mcp-inspector --method tools/list failed (exit $status): $(cat "$WORK/$name-list.json")"
  }
  echo "$name tools/list: $(check_list "$WORK/$name-list.json")"
  log "Inspector $INSPECTOR_VERSION over $name: tools/call get_active_outcomes"
  inspector --method tools/call --tool-name get_active_outcomes --tool-args-json '{"limit":20}' "${server[@]}" >"$WORK/$name-call.json" ||
    die "$name: mcp-inspector --method tools/call failed (exit $?): $(cat "$WORK/$name-call.json")"
  echo "$name tools/call get_active_outcomes: $(check_call "$WORK/$name-call.json")"
}

run_check stdio "${STDIO_SERVER[@]}"
run_check http "${HTTP_SERVER[@]}"
echo "mcp-inspector-check: ok (Inspector $INSPECTOR_VERSION on Node $("$NODE22" --version), server on Node $("$NODE20" --version))"
