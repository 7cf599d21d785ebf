#!/usr/bin/env bash
# Shared setup for the Quickstart commands and CI: pnpm (pinned), dependencies,
# a running Postgres and Redis, and the databases. Safe to run again.
#
# Environment (all optional):
#   POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER  where and as whom to connect
#                                   (default 127.0.0.1, 5432, postgres)
#   PGPASSWORD                      the Postgres password, when the server does
#                                   not use trust auth; psql and the app's
#                                   Postgres driver read it themselves
#   REDIS_URL                       default redis://127.0.0.1:6379; a local Redis
#                                   is started on its port when none answers
#   OUTCOME_RUNTIME_SETUP_DONE=1    scripts/test.sh skips this setup (set by .ci/run,
#                                   which has just done it)
# psql never prompts for a password (-w): without trust auth, set PGPASSWORD.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PNPM_VERSION="$(node -p "require('$ROOT/package.json').packageManager.split('@')[1]")"
export POSTGRES_HOST="${POSTGRES_HOST:-127.0.0.1}"
export POSTGRES_PORT="${POSTGRES_PORT:-5432}"
export POSTGRES_USER="${POSTGRES_USER:-postgres}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
fail() {
  printf 'error: %s\n' "$1" >&2
  shift
  for line in "$@"; do printf '  hint: %s\n' "$line" >&2; done
  exit 1
}

ensure_pnpm() {
  if command -v pnpm >/dev/null 2>&1 && [ "$(pnpm --version)" = "$PNPM_VERSION" ]; then return; fi
  log "installing pnpm $PNPM_VERSION (npm install --global pnpm@$PNPM_VERSION)"
  if ! npm install --global --no-audit --no-fund --loglevel=error "pnpm@$PNPM_VERSION"; then
    fail "could not install pnpm $PNPM_VERSION with npm (its error is above)" \
      "EACCES means npm's global folder is not writable: run this as root," \
      "or use a folder of your own: npm config set prefix ~/.local (with ~/.local/bin on PATH)," \
      "or use corepack: corepack enable && corepack prepare pnpm@$PNPM_VERSION --activate"
  fi
  hash -r
  if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
    fail "pnpm $PNPM_VERSION was installed, but \`pnpm\` on PATH is $(command -v pnpm || echo 'missing')" \
      "put npm's global bin folder ($(npm prefix --global)/bin) first on PATH"
  fi
}

ensure_dependencies() {
  log "installing dependencies (pnpm install --frozen-lockfile)"
  (cd "$ROOT" && pnpm install --frozen-lockfile --loglevel=error)
}

# The clients the checks below use, and the Debian package of each.
require_clients() {
  local missing=() packages=()
  command -v pg_isready >/dev/null 2>&1 || missing+=(pg_isready)
  command -v psql >/dev/null 2>&1 || missing+=(psql)
  [ "${#missing[@]}" -eq 0 ] || packages+=(postgresql-client)
  if ! command -v redis-cli >/dev/null 2>&1; then
    missing+=(redis-cli)
    packages+=(redis-tools)
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    fail "not found: ${missing[*]} (needed to check and prepare Postgres and Redis)" \
      "on Debian or Ubuntu: apt-get install ${packages[*]}"
  fi
}

# REDIS_URL's host and port: redis[s]://[user:password@]host[:port][/db][?options].
redis_authority() {
  local rest="${REDIS_URL#*://}"
  rest="${rest%%[/?]*}"
  echo "${rest##*@}"
}
redis_host() {
  local rest
  rest="$(redis_authority)"
  if [[ "$rest" == \[* ]]; then rest="${rest#[}" && echo "${rest%%]*}"; else echo "${rest%%:*}"; fi
}
redis_port() {
  local rest
  rest="$(redis_authority)"
  rest="${rest##*]}"
  if [[ "$rest" == *:* ]]; then echo "${rest##*:}"; else echo 6379; fi
}

postgres_up() { pg_isready -q -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" >/dev/null 2>&1; }
redis_up() { redis-cli -u "$REDIS_URL" ping 2>/dev/null | grep -q PONG; }

ensure_postgres() {
  require_clients
  if postgres_up; then return; fi
  log "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
  fi
  for _ in $(seq 1 30); do postgres_up && return; sleep 1; done
  fail "PostgreSQL is not reachable at $POSTGRES_HOST:$POSTGRES_PORT" \
    "start it (or set POSTGRES_HOST/POSTGRES_PORT) and run again"
}

ensure_redis() {
  require_clients
  if redis_up; then return; fi
  local port logfile=/var/log/redis/ci.log logged=0 started=""
  port="$(redis_port)"
  log "starting Redis on port $port"
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    [ -f "$logfile" ] && logged="$(wc -c <"$logfile")"
    local out
    # Errors before daemonizing come back here; later ones (a port in use) go to the log.
    if ! out="$(redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$port" --save "" --appendonly no \
      --dir /var/lib/redis --logfile "$logfile" 2>&1)"; then
      printf 'redis-server failed to start:\n%s\n' "$out" >&2
    else
      [ -z "$out" ] || printf '%s\n' "$out" >&2
      started=1
    fi
  else
    printf 'redis-server not found (on Debian or Ubuntu: apt-get install redis-server)\n' >&2
  fi
  # What redis-server has logged since it was started here.
  redis_new_log() { [ -n "$started" ] && [ -f "$logfile" ] && tail -c "+$((logged + 1))" "$logfile"; }
  # Wait for a server started here; without one, there is nothing to wait for.
  local tries=1
  [ -z "$started" ] || tries=30
  for _ in $(seq 1 "$tries"); do
    redis_up && return
    redis_new_log | grep -qE 'aborting|Fatal|FATAL' && break
    sleep 1
  done
  if [ -n "$(redis_new_log || true)" ]; then
    printf 'redis-server failed to start; the end of %s:\n' "$logfile" >&2
    redis_new_log | tail -n 5 >&2
  fi
  fail "Redis is not reachable at $REDIS_URL ($(redis_host):$port)" \
    "start it (or set REDIS_URL) and run again"
}

# psql_admin ARGS...: psql on the `postgres` database, never prompting. On a
# refused login, print what to change.
psql_admin() {
  local out status=0
  out="$(psql -w -X -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" -U "$POSTGRES_USER" -d postgres "$@" 2>&1)" || status=$?
  if [ "$status" -ne 0 ]; then
    printf '%s\n' "$out" >&2
    if grep -qiE 'role .* does not exist' <<<"$out"; then
      fail "PostgreSQL at $POSTGRES_HOST:$POSTGRES_PORT has no role $POSTGRES_USER" \
        "set POSTGRES_USER to a role that exists (and PGPASSWORD if it needs one) and run again"
    fi
    if grep -qiE 'password authentication failed|no password supplied|pg_hba\.conf|authentication failed' <<<"$out"; then
      fail "PostgreSQL at $POSTGRES_HOST:$POSTGRES_PORT refused user $POSTGRES_USER" \
        "allow trust auth for local TCP (pg_hba.conf: host all all 127.0.0.1/32 trust), or" \
        "set PGPASSWORD (and POSTGRES_USER if not postgres) and run again"
    fi
    fail "psql failed (its error is above)"
  fi
  printf '%s\n' "$out"
}

# ensure_database NAME: create the database if it does not exist.
ensure_database() {
  local name="$1" exists
  exists="$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'")"
  if [ "$exists" != 1 ]; then
    log "creating database $name"
    psql_admin -qc "CREATE DATABASE \"$name\"" >/dev/null
  fi
}

# ensure_chromium: the dashboard's browser tests drive Debian's Chromium
# (never a downloaded browser); install the package when it is missing.
ensure_chromium() {
  if [ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then return 0; fi
  log "installing chromium (Debian package) for the browser tests"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
  $sudo apt-get install -y -qq chromium >/dev/null 2>&1 ||
    { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq chromium >/dev/null 2>&1; } ||
    fail "could not install chromium (apt-get install chromium); the browser tests need /usr/bin/chromium or CHROMIUM_PATH"
}

# ensure_prometheus: tests/metrics-prometheus.test.ts scrapes the API and the
# worker with Debian's Prometheus (an instance of its own on a free port, never
# the package's service) and checks deploy/prometheus with its promtool; the
# prometheus connector's tests (tests/prometheus-connector.test.ts, its
# contract harness, signals test) start their own the same way
# (@outcome-runtime/testing/prometheus).
ensure_prometheus() {
  if [ -x "${PROMETHEUS_PATH:-/usr/bin/prometheus}" ] && [ -x "${PROMTOOL_PATH:-/usr/bin/promtool}" ]; then return 0; fi
  log "installing prometheus (Debian package) for the metrics test"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
  $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 ||
    { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; } ||
    fail "could not install prometheus (apt-get install prometheus); the metrics and prometheus connector tests need /usr/bin/prometheus and /usr/bin/promtool (or PROMETHEUS_PATH and PROMTOOL_PATH)"
}

# ensure_mariadb: the mysql connector's tests, and `pnpm demo --source mariadb`,
# read a real MariaDB (or MySQL) at TEST_MYSQL_URL (default
# mysql://root@127.0.0.1:3306). Starts the local server when none answers, and
# installs Debian's mariadb-server when there is none.
ensure_mariadb() {
  export TEST_MYSQL_URL="${TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306}"
  local rest="${TEST_MYSQL_URL#*://}"
  rest="${rest##*@}"
  rest="${rest%%/*}"
  local host="${rest%%:*}" port=3306
  [[ "$rest" == *:* ]] && port="${rest##*:}"
  mariadb_up() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }
  if mariadb_up; then ensure_mariadb_admin "$host" "$port"; return 0; fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
  if ! command -v mariadbd >/dev/null 2>&1 && ! command -v mysqld >/dev/null 2>&1; then
    log "installing mariadb-server (Debian package) for the mysql connector's tests"
    $sudo apt-get install -y -qq mariadb-server >/dev/null 2>&1 ||
      { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq mariadb-server >/dev/null 2>&1; } ||
      fail "could not install mariadb-server; the mysql connector's tests need a MariaDB or MySQL at TEST_MYSQL_URL"
  fi
  log "starting MariaDB"
  $sudo service mariadb start >/dev/null 2>&1 || $sudo service mysql start >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do mariadb_up && { ensure_mariadb_admin "$host" "$port"; return 0; }; sleep 1; done
  fail "MariaDB is not reachable at $host:$port" "start it (or set TEST_MYSQL_URL=mysql://user:password@host:port) and run again"
}

# ensure_mariadb_admin HOST PORT: with the default TEST_MYSQL_URL, root must log
# in over TCP without a password (Debian's root logs in through the socket
# only): that login is created through the socket when it is missing.
ensure_mariadb_admin() {
  [ "$TEST_MYSQL_URL" = "mysql://root@127.0.0.1:3306" ] || return 0
  command -v mariadb >/dev/null 2>&1 || return 0
  if mariadb -h "$1" -P "$2" -u root -e 'SELECT 1' >/dev/null 2>&1; then return 0; fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
  log "letting root log in to MariaDB from 127.0.0.1 (the tests' TEST_MYSQL_URL)"
  $sudo mariadb -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION" ||
    fail "root cannot log in to MariaDB at $1:$2" "set TEST_MYSQL_URL=mysql://user:password@host:port to an account that may create databases and users"
}

# ensure_docker_compose: CI validates docker-compose.yml with Debian's
# docker-compose package (`docker-compose config`; no Docker engine needed).
ensure_docker_compose() {
  if command -v docker-compose >/dev/null 2>&1; then return 0; fi
  log "installing docker-compose (Debian package) to validate docker-compose.yml"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
  $sudo apt-get install -y -qq docker-compose >/dev/null 2>&1 ||
    { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq docker-compose >/dev/null 2>&1; } ||
    fail "could not install docker-compose (apt-get install docker-compose); it validates docker-compose.yml"
}

# --- TimescaleDB and pgvector -------------------------------------------------
# docker compose runs the runtime on TimescaleDB with pgvector; the tests run
# both storage paths (docs/self-hosting.md, "Storage"). ensure_pg_extensions
# installs both into the local PostgreSQL when they are missing: from the
# distribution's packages where it has them, else built from the release
# sources in ../shared/vendor (SOURCES.md there). It then preloads TimescaleDB
# (shared_preload_libraries), turns its telemetry off, and restarts the server.
# A server this cannot change (not local, no root, no sources) stays as it is:
# everything runs on plain Postgres then, as before.
#   OUTCOME_RUNTIME_PG_EXTENSIONS=off   leave the server's extensions alone
#   OUTCOME_RUNTIME_VENDOR_DIR          where the sources are (default ../shared/vendor)
TIMESCALEDB_VERSION=2.28.3
PGVECTOR_VERSION=0.8.6

pg_scalar() { psql_admin -tAc "$1" | tr -d '[:space:]'; }
pg_extension_available() { [ "$(pg_scalar "SELECT count(*) FROM pg_available_extensions WHERE name = '$1'")" != 0 ]; }
pg_local() { case "$POSTGRES_HOST" in 127.0.0.1 | localhost | ::1 | /*) return 0 ;; *) return 1 ;; esac; }

# apt_install PACKAGE...: install Debian packages, waiting for another apt run's lock.
apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
  $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=300 "$@" >/dev/null 2>&1 ||
    { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=300 "$@" >/dev/null 2>&1; }
}

# apt_has PACKAGE: the distribution offers the package (a candidate version).
apt_has() {
  command -v apt-cache >/dev/null 2>&1 || return 1
  local candidate
  candidate="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
  [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

# build_tools MAJOR: pg_config of the server's major version, cmake, a C compiler.
build_tools() {
  local major="$1"
  if [ -x "/usr/lib/postgresql/$major/bin/pg_config" ] && [ -f "/usr/include/postgresql/$major/server/postgres.h" ] &&
    command -v cmake >/dev/null 2>&1 && command -v make >/dev/null 2>&1 && command -v cc >/dev/null 2>&1; then
    return 0
  fi
  log "installing the build tools (postgresql-server-dev-$major, cmake, build-essential)"
  apt_install "postgresql-server-dev-$major" cmake build-essential
}

vendor_dir() { echo "${OUTCOME_RUNTIME_VENDOR_DIR:-$ROOT/../shared/vendor}"; }
vendor_build_dir() { echo "${XDG_CACHE_HOME:-$HOME/.cache}/outcome-runtime/vendor-build"; }

# install_extension MAJOR LABEL PACKAGE NAME VERSION WITHOUT BUILD: install one extension from the
# distribution's PACKAGE, else build NAME-VERSION.tar.gz from the vendored sources with the function BUILD
# (run in the unpacked folder, MAJOR as its argument). WITHOUT says what runs without it.
install_extension() {
  local major="$1" label="$2" package="$3" name="$4" version="$5" without="$6" build="$7" archive
  if apt_has "$package"; then
    log "installing $label ($package)"
    apt_install "$package" && return 0
  fi
  archive="$(vendor_dir)/$name-$version.tar.gz"
  if [ ! -f "$archive" ]; then
    log "$label: not installed and $archive not found: $without"
    return 1
  fi
  build_tools "$major" || { log "$label: could not install the build tools: $without"; return 1; }
  local dir started=$SECONDS
  dir="$(vendor_build_dir)"
  log "building $label $version from $archive (once per machine)"
  rm -rf "${dir:?}/$name-$version" && mkdir -p "$dir" && tar -xzf "$archive" -C "$dir"
  if ! (cd "$dir/$name-$version" && "$build" "$major") >"$dir/$name.log" 2>&1; then
    tail -n 20 "$dir/$name.log" >&2
    log "$label: the build failed (the end of $dir/$name.log is above): $without"
    return 1
  fi
  log "$label $version installed in $((SECONDS - started)) s"
}

# TimescaleDB's CMake build (its ./bootstrap), without the regression and TAP checks.
build_timescaledb() {
  local pg_config="/usr/lib/postgresql/$1/bin/pg_config"
  PATH="/usr/lib/postgresql/$1/bin:$PATH" ./bootstrap -DCMAKE_BUILD_TYPE=Release -DREGRESS_CHECKS=OFF \
    -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF -DLINTER=OFF -DPG_CONFIG="$pg_config" &&
    cd build && make -j"$(nproc)" && make install
}

# pgvector's PGXS build; OPTFLAGS="" leaves out -march=native, so the build runs on any machine of the kind.
build_pgvector() {
  local pg_config="/usr/lib/postgresql/$1/bin/pg_config"
  make PG_CONFIG="$pg_config" OPTFLAGS="" && make install PG_CONFIG="$pg_config"
}

install_timescaledb() {
  install_extension "$1" TimescaleDB "timescaledb-2-postgresql-$1" timescaledb "$TIMESCALEDB_VERSION" \
    "signal points use plain tables" build_timescaledb
}

install_pgvector() {
  install_extension "$1" pgvector "postgresql-$1-pgvector" pgvector "$PGVECTOR_VERSION" \
    "learnings are searched by full text only" build_pgvector
}

restart_postgres() {
  local major="$1"
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d "/etc/postgresql/$major/main" ]; then
    pg_ctlcluster --skip-systemctl-redirect "$major" main restart >/dev/null 2>&1 || return 1
  else
    return 1
  fi
  for _ in $(seq 1 60); do postgres_up && return 0; sleep 1; done
  return 1
}

# timescaledb_telemetry_off: TimescaleDB's telemetry is off unless the operator turns it on
# (docs/self-hosting.md, Storage).
timescaledb_telemetry_off() {
  # pg_file_settings shows what the configuration files set. The setting itself is known only where the
  # extension's library is loaded (a database with the extension): it is read and set from a scratch one.
  if [ "$(pg_scalar "SELECT setting FROM pg_file_settings WHERE name = 'timescaledb.telemetry_level' AND error IS NULL ORDER BY seqno DESC LIMIT 1")" = off ]; then
    return 0
  fi
  local scratch=outcome_runtime_setup_scratch telemetry
  psql_admin -qc "DROP DATABASE IF EXISTS $scratch WITH (FORCE)" >/dev/null
  psql_admin -qc "CREATE DATABASE $scratch" >/dev/null
  telemetry="$(psql -w -X -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" -U "$POSTGRES_USER" -d "$scratch" -qtAc \
    "CREATE EXTENSION IF NOT EXISTS timescaledb; SELECT current_setting('timescaledb.telemetry_level')" 2>/dev/null | tail -n 1 || true)"
  if [ "$telemetry" != off ]; then
    psql -w -X -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" -U "$POSTGRES_USER" -d "$scratch" -qc \
      "ALTER SYSTEM SET timescaledb.telemetry_level = 'off'" >/dev/null &&
      psql_admin -qc "SELECT pg_reload_conf()" >/dev/null &&
      log "TimescaleDB telemetry turned off (timescaledb.telemetry_level = off)"
  fi
  psql_admin -qc "DROP DATABASE IF EXISTS $scratch WITH (FORCE)" >/dev/null
}

ensure_pg_extensions() {
  if [ "${OUTCOME_RUNTIME_PG_EXTENSIONS:-auto}" = off ]; then
    log "OUTCOME_RUNTIME_PG_EXTENSIONS=off: the server's extensions are left as they are"
    return 0
  fi
  local major started=$SECONDS
  major="$(pg_scalar "SELECT current_setting('server_version_num')::int / 10000")"
  local can_install=1
  pg_local || can_install=0
  if [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then can_install=0; fi
  if ! pg_extension_available timescaledb; then
    if [ "$can_install" = 1 ]; then install_timescaledb "$major" || true; else
      log "TimescaleDB is not installed on $POSTGRES_HOST (not a local server this user may change): plain tables"
    fi
  fi
  if ! pg_extension_available vector; then
    if [ "$can_install" = 1 ]; then install_pgvector "$major" || true; else
      log "pgvector is not installed on $POSTGRES_HOST (not a local server this user may change): full-text search only"
    fi
  fi
  # The tests then insist on both storage paths (tests/signal-storage.test.ts): a failed build fails there,
  # instead of quietly testing plain tables only.
  if [ "$can_install" = 1 ] && { [ -f "$(vendor_dir)/timescaledb-$TIMESCALEDB_VERSION.tar.gz" ] || pg_extension_available timescaledb; }; then
    export TEST_REQUIRE_TIMESCALEDB=1
  fi
  pg_extension_available timescaledb || return 0
  local preload
  preload="$(pg_scalar "SHOW shared_preload_libraries")"
  if [[ ",$preload," != *",timescaledb,"* ]]; then
    log "preloading TimescaleDB (shared_preload_libraries = '${preload:+$preload,}timescaledb')"
    psql_admin -qc "ALTER SYSTEM SET shared_preload_libraries = '${preload:+$preload,}timescaledb'" >/dev/null
    if [ "$can_install" = 1 ] && restart_postgres "$major"; then
      log "PostgreSQL restarted with TimescaleDB preloaded"
    else
      log "TimescaleDB is set to be preloaded, which takes a restart of PostgreSQL: restart it" \
        "(until then the runtime uses plain tables and says so in /healthz)"
      return 0
    fi
  fi
  timescaledb_telemetry_off
  log "TimescaleDB and pgvector: $(psql_admin -tAc "SELECT string_agg(name || ' ' || default_version, ', ' ORDER BY name) FROM pg_available_extensions WHERE name IN ('timescaledb', 'vector')") ($((SECONDS - started)) s)"
}

setup_all() {
  ensure_pnpm
  ensure_dependencies
  ensure_postgres
  ensure_pg_extensions
  ensure_redis
  ensure_mariadb
}
