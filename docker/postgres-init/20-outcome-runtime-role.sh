#!/usr/bin/env bash
# Runs once, when the TimescaleDB container initialises its data directory
# (docker-entrypoint-initdb.d): the runtime's own role, which owns the
# runtime's database and is not a superuser. The API and the worker connect
# as it; the superuser (POSTGRES_USER) is kept for the operator. Extensions a
# non-superuser cannot create are created here, as the superuser.
#
# Environment (from docker-compose.yml):
#   POSTGRES_USER, POSTGRES_DB      set by the image
#   OUTCOME_RUNTIME_DB_USER         the runtime's role (default outcome_runtime)
#   OUTCOME_RUNTIME_DB_PASSWORD     its password (required)
set -euo pipefail
role="${OUTCOME_RUNTIME_DB_USER:-outcome_runtime}"
password="${OUTCOME_RUNTIME_DB_PASSWORD:?set OUTCOME_RUNTIME_DB_PASSWORD}"
database="${POSTGRES_DB:?}"
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:?}" --dbname "$database" \
  -v role="$role" -v password="$password" -v database="$database" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION', :'role', :'password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'database', :'role') \gexec
SELECT format('ALTER SCHEMA public OWNER TO %I', :'role') \gexec
CREATE EXTENSION IF NOT EXISTS pgcrypto;
SELECT 'CREATE EXTENSION IF NOT EXISTS timescaledb'
 WHERE EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') \gexec
-- pgvector is not a trusted extension: the runtime's role could not create it (semantic search of learnings).
SELECT 'CREATE EXTENSION IF NOT EXISTS vector'
 WHERE EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') \gexec
SQL
