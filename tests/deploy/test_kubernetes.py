"""The Kubernetes base (deploy/kubernetes/base/), built by kustomize and validated by kubeconform.

Where the tools are (one rule): the directory in $AVAILABILITY_TOOLS, else
~/.cache/availability-tools. `deploy/kubernetes/tools.sh DIR` fills it (kustomize and
kubeconform with `go install`, the Kubernetes API's JSON Schemas from the PyPI wheel
kubernetes-validate); .ci/run does that. The tests install nothing: without the tools they are
skipped locally and fail under CI (tests.conftest.unavailable).

What they show: check.sh passes (every resource valid against the strict schemas, none
without a schema); copies broken in four ways (an unknown field, a wrong type, a missing
required field, a kind with no schema) fail it; every container and init container image is
pinned to an exact version, the same versions as the compose stack; every pod runs as
non-root under the "restricted" Pod Security Standard; long-running containers have probes,
every container requests and limits; the worker's replicas fit the calls topic's partitions;
every pod that reads a secret refuses the placeholders first (the real check-secrets.sh, run
here); the copies under base/files/ equal their sources; Prometheus' configuration passes
promtool.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.topics import CALLS
from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
KUBE_DIR = ROOT / "deploy" / "kubernetes"
BASE = KUBE_DIR / "base"
CHECK = KUBE_DIR / "check.sh"
TIMEOUT = 120
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(\.\d+)?$")
WORKLOADS = ("Deployment", "StatefulSet", "Job")
# Containers whose image writes outside its volumes (documented in their manifests).
WRITABLE_ROOT = {"kafka", "clickhouse"}


def tools_dir() -> Path:
    """$AVAILABILITY_TOOLS, else ~/.cache/availability-tools; with everything check.sh needs."""
    tools = Path(os.environ.get("AVAILABILITY_TOOLS") or Path.home() / ".cache" / "availability-tools")
    versions = (KUBE_DIR / "versions.env").read_text(encoding="utf-8")
    match = re.search(r'KUBERNETES_VERSION="\$\{KUBERNETES_VERSION:-([0-9.]+)\}"', versions)
    assert match, "versions.env names no KUBERNETES_VERSION"
    version = os.environ.get("KUBERNETES_VERSION") or match.group(1)
    needed = [tools / "kustomize", tools / "kubeconform", tools / "kubernetes-json-schema" / f"v{version}-local-strict"]
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        unavailable(f"missing {', '.join(missing)} (run deploy/kubernetes/tools.sh {tools}, or set AVAILABILITY_TOOLS)")
    return tools


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=ROOT
    )


@cache
def built() -> tuple[dict[str, Any], ...]:
    """`kustomize build` of the base: the resources `kubectl apply -k` would send."""
    result = run(tools_dir() / "kustomize", "build", BASE)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def workloads() -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, pod spec) of every Deployment, StatefulSet and Job."""
    for doc in built():
        if doc["kind"] in WORKLOADS:
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


def test_check_script_validates_every_resource() -> None:
    result = run(CHECK, tools_dir())
    assert result.returncode == 0, result.stdout + result.stderr
    count = len(built())
    assert f"Summary: {count} resources found in 1 file - Valid: {count}, Invalid: 0, Errors: 0, Skipped: 0" in (
        result.stdout
    ), result.stdout
    kinds = {doc["kind"] for doc in built()}
    assert kinds == {"Namespace", "ConfigMap", "Secret", "Service", "Deployment", "StatefulSet", "Job"}


BREAKAGES = {
    # name: (file, old text, new text, what kubeconform says)
    "unknown field": (
        "worker.yaml",
        '          args: ["stream", "--web-host", "0.0.0.0", "--web-port", "6066"]\n',
        '          args: ["stream", "--web-host", "0.0.0.0", "--web-port", "6066"]\n          imagePullPolcy: Always\n',
        "additional properties 'imagePullPolcy' not allowed",
    ),
    "wrong type": ("worker.yaml", "  replicas: 3\n", '  replicas: "three"\n', "'/spec/replicas': got string"),
    "missing required field": (
        "webhook.yaml",
        "      containers:\n        - name: webhook\n          image: availability\n",
        "      containers:\n        - image: availability\n",
        "missing property 'name'",
    ),
    "kind without a schema": (
        "namespace.yaml",
        "",
        "---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: webhook\nspec: {}\n",
        "could not find schema for Certificate",
    ),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_check_script_fails_on_a_broken_copy(tmp_path: Path, breakage: str) -> None:
    tools = tools_dir()
    name, old, new, message = BREAKAGES[breakage]
    copy = tmp_path / "base"
    shutil.copytree(BASE, copy)
    text = (copy / name).read_text(encoding="utf-8")
    if old:
        assert text.count(old) == 1, f"{old!r} is not once in {name}"
        text = text.replace(old, new)
    else:
        text += new
    (copy / name).write_text(text, encoding="utf-8")
    result = run(CHECK, tools, copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stdout, result.stdout


def images() -> dict[str, str]:
    """image -> the first container (workload/container) that runs it."""
    found: dict[str, str] = {}
    for name, pod in workloads():
        for container in containers(pod):
            found.setdefault(container["image"], f"{name}/{container['name']}")
    return found


def test_every_image_is_pinned_to_an_exact_version_the_same_as_in_compose() -> None:
    for image, where in images().items():
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{where}: {image} has no tag"
        assert tag != "latest" and EXACT_VERSION.match(tag), f"{where}: {image} is not an exact version"
    assert f"availability:{project_version()}" in images()
    compose = yaml.safe_load((ROOT / "deploy" / "compose" / "docker-compose.yml").read_text(encoding="utf-8"))
    in_compose = {s["image"] for s in compose["services"].values()} | {compose["x-availability"]["image"]}
    assert set(images()) == in_compose


def test_every_container_runs_as_non_root_under_the_restricted_standard() -> None:
    (namespace,) = (doc for doc in built() if doc["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, pod in workloads():
        pod_context = pod.get("securityContext", {})
        assert pod.get("automountServiceAccountToken") is False, name
        assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        for container in containers(pod):
            where = f"{name}/{container['name']}"
            context = {**pod_context, **container.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True, where
            assert isinstance(context.get("runAsUser"), int) and context["runAsUser"] > 0, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert "privileged" not in context and "add" not in context.get("capabilities", {}), where
            read_only = context.get("readOnlyRootFilesystem")
            assert read_only is (container["name"] not in WRITABLE_ROOT), where


def test_long_running_containers_have_probes_and_every_container_requests_and_limits() -> None:
    for doc in built():
        if doc["kind"] not in WORKLOADS:
            continue
        pod = doc["spec"]["template"]["spec"]
        for container in containers(pod):
            where = f"{doc['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{where}: {kind}"
        if doc["kind"] != "Job":
            for container in pod["containers"]:
                where = f"{doc['metadata']['name']}/{container['name']}"
                assert "readinessProbe" in container and "livenessProbe" in container, where


def test_the_workers_fit_the_partitions_and_are_all_scraped() -> None:
    (worker,) = (doc for doc in built() if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "worker")
    assert 1 < worker["spec"]["replicas"] <= CALLS.partitions
    (service,) = (doc for doc in built() if doc["kind"] == "Service" and doc["metadata"]["name"] == "worker-metrics")
    assert service["spec"]["clusterIP"] == "None"  # one DNS record per worker
    assert service["spec"]["selector"] == worker["spec"]["selector"]["matchLabels"]
    prometheus = yaml.safe_load((BASE / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    (sd,) = jobs["availability-stream"]["dns_sd_configs"]
    assert sd["names"] == ["worker-metrics"] and sd["port"] == 6066
    # /metrics binds loopback unless told: Prometheus and the kubelet's probes come from outside the pod.
    (container,) = (c for c in worker["spec"]["template"]["spec"]["containers"] if c["name"] == "worker")
    assert container["args"][container["args"].index("--web-host") + 1] == "0.0.0.0"


def secret_keys(container: dict[str, Any]) -> set[str]:
    return {
        env["valueFrom"]["secretKeyRef"]["key"]
        for env in container.get("env", [])
        if env.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "availability-secrets"
    }


def test_every_pod_that_reads_a_secret_refuses_the_placeholders_first() -> None:
    example = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in (BASE / "secrets.env.example").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    }
    used: set[str] = set()
    for name, pod in workloads():
        needed = set().union(*(secret_keys(c) for c in pod["containers"]))
        used |= needed
        if not needed:
            continue
        (check,) = (c for c in pod.get("initContainers", []) if c["name"] == "check-secrets")
        required = next(e["value"] for e in check["env"] if e["name"] == "REQUIRED_SECRETS").split()
        assert needed <= set(required) <= secret_keys(check), name
    assert used == set(example)
    # The real script, with the example's values: refuses each key, prints no value.
    sh = shutil.which("sh")
    assert sh is not None
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REQUIRED_SECRETS": " ".join(example), **example}
    result = subprocess.run(
        [sh, BASE / "check-secrets.sh"], capture_output=True, text=True, env=environment, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 1
    for key in example:
        assert f"check-secrets: {key} in the Secret availability-secrets is not set" in result.stderr
    good = {key: "0123456789abcdef0123456789abcdef" for key in example}
    result = subprocess.run(
        [sh, BASE / "check-secrets.sh"],
        capture_output=True,
        text=True,
        env={**environment, **good},
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "0123456789abcdef" not in result.stdout + result.stderr


def test_grafana_gets_every_variable_the_provisioned_datasources_read() -> None:
    datasources = BASE / "files" / "grafana" / "datasources" / "availability.yaml"
    text = re.sub(r"(?m)^\s*#.*$", "", datasources.read_text(encoding="utf-8"))  # not the comments
    read = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", text))
    assert read, "the datasources file reads no variable"
    (grafana,) = (pod for name, pod in workloads() if name == "grafana")
    (container,) = (c for c in grafana["containers"] if c["name"] == "grafana")
    assert read - {env["name"] for env in container["env"]} == set()


def test_the_copies_under_files_equal_their_sources() -> None:
    result = run(KUBE_DIR / "sync.sh", "--check")
    assert result.returncode == 0, result.stderr


def test_the_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool is not installed (apt-get install prometheus)")
    text = (BASE / "prometheus.yml").read_text(encoding="utf-8")
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace("/etc/prometheus/rules/", f"{BASE / 'files' / 'prometheus'}/"), encoding="utf-8")
    result = run(promtool, "check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout
