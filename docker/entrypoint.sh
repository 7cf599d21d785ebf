#!/bin/sh
# Entrypoint of the Outcome Runtime image (run by tini, which forwards signals
# and reaps zombies). It only prepares the environment and then `exec`s the
# command (the API by default, the worker with the compose `command`), so the
# process gets SIGTERM directly.
#
# First-run bootstrap key: when OUTCOME_RUNTIME_API_KEY is empty and the API is
# started with OUTCOME_RUNTIME_GENERATE_KEY=true (docker-compose.yml sets it for
# the api service), a key is generated once, kept in
# $OUTCOME_RUNTIME_STATE_DIR/bootstrap-api-key (a named volume), and printed to
# the log only on the start that generated it. Later starts reuse the file
# silently. Set OUTCOME_RUNTIME_API_KEY in .env to choose the key yourself
# (that wins; changing it rotates the key).
set -eu

state_dir="${OUTCOME_RUNTIME_STATE_DIR:-/var/lib/outcome-runtime}"
key_file="$state_dir/bootstrap-api-key"

if [ -z "${OUTCOME_RUNTIME_API_KEY:-}" ] && [ "${OUTCOME_RUNTIME_GENERATE_KEY:-false}" = "true" ]; then
  if [ -s "$key_file" ]; then
    OUTCOME_RUNTIME_API_KEY="$(cat "$key_file")"
  else
    umask 077
    mkdir -p "$state_dir"
    OUTCOME_RUNTIME_API_KEY="$(node -e "process.stdout.write('ork_' + require('node:crypto').randomBytes(32).toString('base64url'))")"
    printf '%s\n' "$OUTCOME_RUNTIME_API_KEY" >"$key_file"
    echo "================================================================================"
    echo "First start: generated the bootstrap admin API key (shown once):"
    echo ""
    echo "  $OUTCOME_RUNTIME_API_KEY"
    echo ""
    echo "Keep it in a password manager, or put it in .env as OUTCOME_RUNTIME_API_KEY."
    echo "It is stored in $key_file (volume apistate) and reused on restarts."
    echo "================================================================================"
  fi
  export OUTCOME_RUNTIME_API_KEY
fi

exec "$@"
