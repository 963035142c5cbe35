#!/usr/bin/env bash
# Builds the kustomization with kustomize and validates every resource with kubeconform
# against the Kubernetes API's JSON Schemas, strictly: an unknown or misspelt field, a wrong
# type, a missing required field, a duplicated key, and a kind without a schema all fail
# (no -ignore-missing-schemas). Offline: the schemas come from tools.sh. Installs nothing.
#
# Usage: deploy/kubernetes/check.sh TOOLS_DIR [KUSTOMIZATION_DIR]
#   TOOLS_DIR          what deploy/kubernetes/tools.sh TOOLS_DIR installed
#   KUSTOMIZATION_DIR  default deploy/kubernetes/base (tests pass broken copies)
#   env KUBERNETES_VERSION  default from versions.env (tools.sh must have unpacked it)
# Exit 0 with kubeconform's summary on success; 1 when something is invalid; 2 without tools.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/kubernetes/versions.env
. "$here/versions.env"

tools="${1:?usage: deploy/kubernetes/check.sh TOOLS_DIR [KUSTOMIZATION_DIR]}"
kustomization="${2:-$here/base}"
schemas="$tools/kubernetes-json-schema"

for tool in kustomize kubeconform; do
  if [ ! -x "$tools/$tool" ]; then
    echo "deploy/kubernetes/check.sh: no $tools/$tool (run deploy/kubernetes/tools.sh $tools)" >&2
    exit 2
  fi
done
if [ ! -d "$schemas/v$KUBERNETES_VERSION-local-strict" ]; then
  echo "deploy/kubernetes/check.sh: no schemas for Kubernetes $KUBERNETES_VERSION in $schemas" \
    "(run deploy/kubernetes/tools.sh $tools)" >&2
  exit 2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$tools/kustomize" build "$kustomization" >"$tmp/manifests.yaml"

# The template kubeconform fills per resource: e.g. .../v1.34.0-local-strict/deployment-apps-v1.json
location="$schemas/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
"$tools/kubeconform" -strict -summary -kubernetes-version "$KUBERNETES_VERSION" \
  -schema-location "$location" "$tmp/manifests.yaml"
