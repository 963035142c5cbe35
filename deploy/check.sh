#!/usr/bin/env bash
# Check every deployment profile with its own tool (run by .ci/run; the tests in tests/deploy/
# also show that each check fails on a broken copy):
#   deploy/single-box   systemd-analyze verify on the units (ExecStart pointed at this checkout's
#                       .venv, as the units' binary exists only on an installed box), shellcheck
#   deploy/compose      docker-compose config
#   deploy/kubernetes   kustomize build | kubeconform -strict ($AVAILABILITY_TOOLS, from tools.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

binary="$PWD/.venv/bin/availability"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for unit in deploy/single-box/*.service deploy/report/*.service deploy/report/*.timer; do
  name="$(basename "$unit")"
  [[ "$name" == *@.service ]] && name="${name/@./@kundreskontra.}"
  sed "s#/usr/local/bin/availability#$binary#g" "$unit" >"$work/$name"
done
# The availability user exists only on an installed box; any other message fails.
if ! out="$(systemd-analyze verify "$work"/*.service "$work"/*.timer 2>&1)"; then
  echo "$out" >&2
  exit 1
fi
if grep -v -i "user.*availability\|availability.*user" <<<"$out" | grep -q .; then
  echo "$out" >&2
  exit 1
fi
units=("$work"/*)
echo "deploy/single-box: systemd-analyze verify OK (${#units[@]} units)"
shellcheck -x deploy/single-box/install.sh deploy/check.sh deploy/compose/check.sh deploy/kubernetes/*.sh
echo "deploy: shellcheck OK"

deploy/compose/check.sh
deploy/kubernetes/check.sh "${AVAILABILITY_TOOLS:-$HOME/.cache/availability-tools}"
