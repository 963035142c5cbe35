#!/usr/bin/env bash
# Checks the compose stack with docker-compose itself (`config`: the file's schema, the
# interpolation of every ${VAR}, the merge keys, the depends_on conditions). Installs nothing:
# docker-compose must be there (Debian: apt-get install docker-compose; 1.29.2 on bookworm).
# No Docker engine is needed, and none is contacted.
#
# Usage: deploy/compose/check.sh [COMPOSE_FILE]
#   COMPOSE_FILE  default: docker-compose.yml beside this script (tests pass broken copies)
#   env COMPOSE   the command, default docker-compose (e.g. COMPOSE="docker compose")
#
# Two runs, both against .env.example beside this script:
#   1. as shipped, with its secrets empty: must FAIL, naming a secret to set in .env
#      (so an unedited copy of .env.example can never start the stack with known passwords);
#   2. with every empty secret filled with a dummy value: must pass `config -q`.
# Runs docker-compose with an empty environment (PATH and HOME only), so a variable exported
# in the caller's shell cannot stand in for one missing from the env file.
# Exit 0 and one line on success; otherwise the tool's own message and exit 1 (2: no tool).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
compose_file="${1:-$here/docker-compose.yml}"
env_example="$here/.env.example"
read -r -a compose <<<"${COMPOSE:-docker-compose}"

if ! command -v "${compose[0]}" >/dev/null 2>&1; then
  echo "deploy/compose/check.sh: ${compose[0]} not found (apt-get install docker-compose)" >&2
  exit 2
fi
[ -f "$compose_file" ] || { echo "deploy/compose/check.sh: no such file: $compose_file" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

run_config() {  # ENV_FILE: docker-compose config -q with nothing but that env file
  env -i PATH="$PATH" HOME="${HOME:-/root}" \
    "${compose[@]}" -f "$compose_file" --env-file "$1" config -q
}

# 1. The example as shipped must be refused, and the refusal must name what to set.
if run_config "$env_example" >"$tmp/out" 2>&1; then
  echo "deploy/compose/check.sh: $compose_file starts with the empty secrets of .env.example;" \
    "every secret must be required (\${VAR:?message})" >&2
  exit 1
fi
if ! grep -Eq 'set [A-Z0-9_]+ in deploy/compose/\.env' "$tmp/out"; then
  echo "deploy/compose/check.sh: $compose_file failed with .env.example for another reason than a missing secret:" >&2
  cat "$tmp/out" >&2
  exit 1
fi

# 2. With every empty variable of the example filled in, the file must be valid.
sed -E 's/^([A-Za-z_][A-Za-z0-9_]*)=$/\1=check-only-not-a-secret-0123456789abcdef/' "$env_example" >"$tmp/env"
if ! run_config "$tmp/env" >"$tmp/out" 2>&1; then
  echo "deploy/compose/check.sh: ${compose[*]} config rejected $compose_file:" >&2
  cat "$tmp/out" >&2
  exit 1
fi

services="$(env -i PATH="$PATH" HOME="${HOME:-/root}" "${compose[@]}" -f "$compose_file" --env-file "$tmp/env" config --services | sort | tr '\n' ' ')"
version="$("${compose[@]}" version --short 2>/dev/null || echo '?')"
echo "deploy/compose: ${compose[*]} $version config OK (services: ${services% }); missing secrets refused"
