#!/usr/bin/env bash
# Copies the files the Kubernetes base mounts from elsewhere in the repository into
# base/files/, because kustomize (and `kubectl apply -k`) only reads files inside the
# kustomization's own directory. Run it after `availability generate` or after editing one of
# the sources; tests/deploy/test_kubernetes.py fails while a copy differs from its source.
#
# Usage: deploy/kubernetes/sync.sh [--check]   (--check: only compare, exit 1 on a difference)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
files="$here/base/files"

# source (from the repository root)               -> copy (under base/files/)
pairs=(
  "deploy/compose/clickhouse/availability-users.xml   clickhouse/availability-users.xml"
  "deploy/compose/clickhouse/availability-config.xml  clickhouse/availability-config.xml"
  "deploy/prometheus/rules/availability.rules.yml     prometheus/availability.rules.yml"
  "deploy/alertmanager/alertmanager.yml               alertmanager/alertmanager.yml"
  "deploy/grafana/provisioning/datasources/availability.yaml  grafana/datasources/availability.yaml"
  "deploy/grafana/provisioning/dashboards/availability.yaml   grafana/dashboards/availability.yaml"
  "dashboards/generated/availability-history.json     dashboards/availability-history.json"
  "dashboards/generated/availability-mailbox.json     dashboards/availability-mailbox.json"
  "dashboards/generated/availability-wall.json        dashboards/availability-wall.json"
)

status=0
for pair in "${pairs[@]}"; do
  read -r source copy <<<"$pair"
  if [ "${1:-}" = "--check" ]; then
    if ! cmp -s "$root/$source" "$files/$copy"; then
      echo "deploy/kubernetes/base/files/$copy differs from $source (run deploy/kubernetes/sync.sh)" >&2
      status=1
    fi
  else
    mkdir -p "$(dirname "$files/$copy")"
    cp "$root/$source" "$files/$copy"
  fi
done
exit "$status"
