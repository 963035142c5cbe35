"""The compose stack (deploy/compose/), checked by docker-compose itself.

No Docker engine is needed or contacted: `docker-compose config` validates the file against
its schema, interpolates every ${VAR} from an env file and resolves the merge keys, paths and
depends_on conditions. The tests run Debian's docker-compose (1.29; `apt-get install
docker-compose`, which .ci/run does) and promtool (Debian's `prometheus`); without them they
are skipped locally and fail under CI (tests.conftest.unavailable).

What they show: check.sh passes and refuses the example's empty secrets; a copy with an
unknown key fails; each secret alone is required and named when missing; every image is
pinned to an exact version (the project's own to the project's version); only the webhook and
Grafana publish ports, on 127.0.0.1 unless .env says otherwise; the worker can be scaled; the
bind-mounted sources exist; .env.example lists every variable; the compose Prometheus
configuration passes promtool with the generated rules; the Dockerfile's shape.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
CHECK = COMPOSE_DIR / "check.sh"
TIMEOUT = 120  # seconds for one docker-compose run; each takes about 2 s

# The secrets: empty in .env.example, each required by ${VAR:?message} in the compose file.
SECRETS = (
    "AVAILABILITY_PSEUDONYM_KEY",
    "AVAILABILITY_WEBHOOK_TOKEN",
    "CLICKHOUSE_WRITER_PASSWORD",
    "CLICKHOUSE_GRAFANA_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
)
DUMMY = "test-only-not-a-secret-0123456789abcdef"
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(\.\d+)?$")


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


def docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        unavailable("docker-compose is not installed (apt-get install docker-compose)")
    return found


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """A command with only PATH and HOME in its environment: no variable of the caller's shell
    can stand in for one the env file lacks."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home())}
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False, cwd=ROOT
    )


def env_file(tmp_path: Path, missing: str | None = None) -> Path:
    """.env.example with every secret filled in, except `missing` (left empty)."""
    lines = []
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        name = line.split("=", 1)[0]
        if name in SECRETS and name != missing:
            line = f"{name}={DUMMY}"
        lines.append(line)
    path = tmp_path / f"env-{missing or 'full'}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@cache
def resolved_config() -> dict[str, Any]:
    """`docker-compose config` of the shipped file with every secret set: what compose runs."""
    tool = docker_compose()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(tool, "-f", COMPOSE_FILE, "--env-file", env_file(Path(tmp)), "config")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict)
    return config


def services() -> dict[str, dict[str, Any]]:
    found = resolved_config()["services"]
    assert isinstance(found, dict)
    return found


def test_check_script_passes_and_refuses_the_empty_secrets_of_the_example() -> None:
    docker_compose()
    result = run(CHECK)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith("deploy/compose: docker-compose")
    assert "config OK" in lines[0] and "missing secrets refused" in lines[0]
    for name in ("kafka", "clickhouse", "topics", "worker", "webhook", "prometheus", "alertmanager", "grafana"):
        assert name in lines[0]


def test_check_script_fails_on_a_copy_with_an_unknown_key(tmp_path: Path) -> None:
    docker_compose()
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert "\n  webhook:\n" in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace("\n  webhook:\n", "\n  webhook:\n    restart_polcy: always\n", 1), encoding="utf-8")
    result = run(CHECK, broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "restart_polcy" in result.stderr


@pytest.mark.parametrize("secret", SECRETS)
def test_each_secret_is_required_and_named_when_missing(tmp_path: Path, secret: str) -> None:
    tool = docker_compose()
    result = run(tool, "-f", COMPOSE_FILE, "--env-file", env_file(tmp_path, missing=secret), "config", "-q")
    assert result.returncode != 0, f"the stack would start without {secret}"
    assert f"set {secret} in deploy/compose/.env" in result.stderr, result.stderr


def test_every_image_is_pinned_to_an_exact_version() -> None:
    for name, service in services().items():
        image = service.get("image")
        assert image, f"{name} has no image"
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and EXACT_VERSION.match(tag), f"{name}: {image} is not an exact version"
        if "build" in service:  # the project's own image: the version of the code in it
            assert image == f"availability:{project_version()}", f"{name}: {image}"


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host address, host port) of each published port, in 1.29's or v2's rendering."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):  # long syntax
            found.append((str(port.get("host_ip", "")), str(port.get("published", ""))))
        else:  # "127.0.0.1:8088:8088/tcp"
            parts = str(port).split(":")
            assert len(parts) == 3, f"{port} names no host address"
            found.append((parts[0], parts[1]))
    return found


def test_only_the_webhook_and_grafana_publish_ports_and_on_localhost() -> None:
    ports = {name: published(service) for name, service in services().items() if published(service)}
    assert ports == {"webhook": [("127.0.0.1", "8088")], "grafana": [("127.0.0.1", "3000")]}


def test_the_worker_can_be_scaled() -> None:
    worker = services()["worker"]
    assert "container_name" not in worker  # a fixed name allows one container
    assert not worker.get("ports")  # a published port allows one container
    assert worker["command"][:1] == ["stream"]
    # /metrics binds loopback unless told: Prometheus scrapes it from another container.
    assert worker["command"][worker["command"].index("--web-host") + 1] == "0.0.0.0"
    environment = worker["environment"]
    assert environment["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert environment["AVAILABILITY_WAREHOUSE"] == f"http://availability:{DUMMY}@clickhouse:8123/availability"
    conditions = {name: dep["condition"] for name, dep in worker["depends_on"].items()}
    assert conditions == {
        "kafka": "service_healthy",
        "clickhouse": "service_healthy",
        "topics": "service_completed_successfully",
    }


def test_prometheus_scrapes_every_worker_by_dns() -> None:
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (sd,) = jobs["availability-stream"]["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["port"] == 6066 and sd["type"] == "A"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_bind_mounted_sources_exist() -> None:
    checked = 0
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else str(volume).split(":", 1)[0]
            if source.startswith("/"):
                assert Path(source).exists(), f"{name} mounts {source}, which does not exist"
                checked += 1
    assert checked >= 8
    grafana = services()["grafana"]
    mounts = [str(v) for v in grafana["volumes"]]
    assert not any("provisioning/alerting" in m for m in mounts), "Prometheus evaluates the rules here, not Grafana"


def test_grafana_gets_every_variable_the_provisioned_datasources_read() -> None:
    datasources = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "availability.yaml"
    text = re.sub(r"(?m)^\s*#.*$", "", datasources.read_text(encoding="utf-8"))  # not the comments
    read = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", text))
    assert read, "the datasources file reads no variable"
    environment = services()["grafana"]["environment"]
    assert read - set(environment) == set()
    assert environment["AVAILABILITY_CLICKHOUSE_USER"] == "grafana"  # the read-only user


def test_env_example_lists_every_variable_the_compose_file_reads() -> None:
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_FILE.read_text(encoding="utf-8")))
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(encoding="utf-8"), re.MULTILINE))
    assert used - listed == set()
    for secret in SECRETS:
        assert re.search(rf"^{secret}=$", ENV_EXAMPLE.read_text(encoding="utf-8"), re.MULTILINE), secret


def test_the_compose_prometheus_config_passes_promtool_with_the_generated_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool is not installed (apt-get install prometheus)")
    text = (COMPOSE_DIR / "prometheus.yml").read_text(encoding="utf-8")
    rules = ROOT / "deploy" / "prometheus" / "rules"
    assert "/etc/prometheus/rules/*.yml" in text  # where compose mounts deploy/prometheus/rules
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace("/etc/prometheus/rules/", f"{rules}/"), encoding="utf-8")
    result = run(promtool, "check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_clickhouse_users_take_their_passwords_from_the_environment_and_grant_one_database() -> None:
    users = ET.parse(COMPOSE_DIR / "clickhouse" / "availability-users.xml").getroot().find("users")
    assert users is not None
    writer, reader = users.find("availability"), users.find("grafana")
    assert writer is not None and reader is not None
    assert [q.text for q in writer.iter("query")] == ["GRANT ALL ON availability.*"]
    assert [q.text for q in reader.iter("query")] == ["GRANT SELECT ON availability.*"]
    environment = services()["clickhouse"]["environment"]
    for user in (writer, reader):
        password = user.find("password")
        assert password is not None and not (password.text or "").strip()
        assert password.get("from_env") in environment
    profile = (
        ET.parse(COMPOSE_DIR / "clickhouse" / "availability-users.xml").getroot().find("profiles/grafana_readonly")
    )
    assert profile is not None and profile.findtext("readonly") == "1"
    assert profile.find("constraints/max_execution_time/changeable_in_readonly") is not None


def test_the_dockerfile_builds_a_non_root_image_from_pinned_bases() -> None:
    text = (COMPOSE_DIR / "Dockerfile").read_text(encoding="utf-8")
    bases = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert len(bases) == 2  # build, then run
    for base in bases:
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-bookworm", base), base
    assert re.findall(r"^USER\s+(\S+)", text, re.MULTILINE) == ["10001:10001"]
    assert re.search(r'^ENTRYPOINT \["availability"\]$', text, re.MULTILINE)
    assert "HEALTHCHECK" not in re.sub(r"#.*", "", text)
    assert not re.search(r"^(ENV|ARG)\s.*(PASSWORD|TOKEN|SECRET|PSEUDONYM_KEY)", text, re.MULTILINE)
    ignore = (COMPOSE_DIR / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    rules = [line for line in ignore.splitlines() if line and not line.startswith("#")]
    assert rules[0] == "*"  # an allow-list: .venv, availability-demo, mutants, caches never sent
    allowed = {line[1:].rstrip("/") for line in rules if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "availability", "schemas", "ingest", "stream_jobs", "dashboards"}
    copied = {source for line in re.findall(r"^COPY (?!--)(.+)$", text, re.MULTILINE) for source in line.split()[:-1]}
    assert copied == allowed
