#!/usr/bin/env bash
# Installs what deploy/kubernetes/check.sh needs into one directory, skipping what is there:
#   DIR/kustomize      sigs.k8s.io/kustomize/kustomize/v5   (go install, ~30 s)
#   DIR/kubeconform    github.com/yannh/kubeconform         (go install, ~30 s)
#   DIR/kubernetes-json-schema/vX.Y.Z-local[-strict]/*.json
#                      the Kubernetes API's JSON Schemas for KUBERNETES_VERSION, from the PyPI
#                      wheel kubernetes-validate (sha256 checked), made loadable offline
# Versions: versions.env beside this script.
#
# Usage: deploy/kubernetes/tools.sh DIR
# Needs: go (the Go module proxy), python3 with pip (PyPI). PYTHON picks the interpreter
# (default: the repository's .venv/bin/python if there, else python3).
#
# Why the schemas are rewritten: each schema of the wheel names itself https://kubernetes.io/...
# ($id) and refers to "/api/_definitions.json", so a validator resolves the reference to
# https://kubernetes.io/api/_definitions.json and tries to download it; kubeconform then
# cannot compile the schema and reports it as missing. Dropping $id and making the reference
# relative ("_definitions.json#...") resolves it to the file beside the schema.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=deploy/kubernetes/versions.env
. "$here/versions.env"

dir="${1:?usage: deploy/kubernetes/tools.sh DIR}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

go_tool() {  # NAME MODULE_PATH VERSION
  if [ -x "$dir/$1" ]; then
    echo "tools.sh: $dir/$1 is there"
    return
  fi
  command -v go >/dev/null 2>&1 || { echo "tools.sh: go is needed to install $1" >&2; exit 1; }
  echo "tools.sh: go install $2@$3"
  GOBIN="$dir" go install "$2@$3"
}

go_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"

schemas="$dir/kubernetes-json-schema"
stamp="$schemas/.kubernetes-validate-$KUBERNETES_VALIDATE_VERSION-v$KUBERNETES_VERSION"
if [ -f "$stamp" ]; then
  echo "tools.sh: schemas for Kubernetes $KUBERNETES_VERSION are there"
  exit 0
fi

python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python=python3; fi
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION --hash=sha256:$KUBERNETES_VALIDATE_SHA256" >"$tmp/requirements.txt"
echo "tools.sh: pip download kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
"$python" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
  -r "$tmp/requirements.txt" -d "$tmp/wheel"

"$python" - "$tmp/wheel" "$schemas" "v$KUBERNETES_VERSION" <<'EOF'
import json
import pathlib
import sys
import zipfile

wheel_dir, out_dir, version = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
(wheel,) = wheel_dir.glob("kubernetes_validate-*.whl")
prefix = "kubernetes_validate/kubernetes-json-schema/"
wanted = (f"{prefix}{version}-local/", f"{prefix}{version}-local-strict/")
DEFINITIONS = "/api/_definitions.json#"


def offline(node):
    """Drop $id and make the references to the shared definitions relative to the file."""
    if isinstance(node, dict):
        node.pop("$id", None)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(DEFINITIONS):
            node["$ref"] = "_definitions.json#" + ref[len(DEFINITIONS):]
        for value in node.values():
            offline(value)
    elif isinstance(node, list):
        for value in node:
            offline(value)


count = 0
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if not name.endswith(".json") or not name.startswith(wanted):
            continue
        schema = json.loads(archive.read(name))
        offline(schema)
        target = out_dir / name[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(schema), encoding="utf-8")
        count += 1
if count == 0:
    sys.exit(f"tools.sh: {wheel.name} has no schemas for Kubernetes {version}")
print(f"tools.sh: {count} schemas for Kubernetes {version} in {out_dir}")
EOF
touch "$stamp"
