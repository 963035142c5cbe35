"""The ports table of docs/operations.md says what the code, the deploy files and the Debian
packages really do: each default port and address there is read here from its origin (the CLI's
parser, deploy/dev/kafka.sh, the single-box and compose files, the installed Debian packages'
defaults), so a change in one place without the other fails."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
KAFKA_SH = ROOT / "deploy" / "dev" / "kafka.sh"
SERVER_PROPERTIES = ROOT / "deploy" / "single-box" / "kafka" / "server.properties"
COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"

# What the table writes for an address, as the programs write it.
ALL_INTERFACES = {"", "0.0.0.0", "*", "*, ::", "::"}


@dataclass(frozen=True)
class Row:
    port: int
    listener: str
    address: str
    clashes: str


def table() -> list[Row]:
    """The rows of the table under `## Ports`."""
    text = OPERATIONS.read_text()
    section = text[text.index("\n## Ports\n") :]
    section = section[: section.index("\n## ", 1)]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    assert lines[0].split("|")[1:3] == [" port ", " listener "], lines[0]
    rows = []
    for line in lines[2:]:  # after the header and its |---| line
        port, listener, address, _, clashes = (cell.strip() for cell in line.strip().strip("|").split("|"))
        rows.append(Row(int(port), listener, address, clashes))
    return rows


def row(starts: str) -> Row:
    """The one row whose listener starts with `starts`."""
    found = [r for r in table() if r.listener.startswith(starts)]
    assert len(found) == 1, f"{len(found)} rows of docs/operations.md's ports table start with {starts!r}"
    return found[0]


def address(written: str) -> str:
    """An address as a program writes it, in the table's words."""
    return "all interfaces" if written in ALL_INTERFACES else written


def option_default(command: tuple[str, ...], option: str) -> Any:
    """The default of `option` of `availability COMMAND…`, from the real parser."""
    from availability.cli import _parser
    from availability.settings import Settings

    parser = _parser(Settings())
    for name in command:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    action = next(a for a in parser._actions if option in a.option_strings)
    return action.default


def kafka_sh(variable: str) -> str:
    """A default of deploy/dev/kafka.sh: `NAME="${ENV:-default}"` or `NAME=value`."""
    text = KAFKA_SH.read_text()
    match = re.search(rf'^{variable}="\$\{{\w+:-([^}}]*)\}}"$', text, re.M) or re.search(
        rf"^{variable}=(\S+)$", text, re.M
    )
    assert match, f"{variable} not found in {KAFKA_SH}"
    return match.group(1)


# -- the service's own listeners ------------------------------------------------------------------


def test_the_webhooks_row_is_the_commands_default() -> None:
    r = row("`availability ingest webhook`")
    assert (r.address, r.port) == (
        option_default(("ingest", "webhook"), "--host"),
        option_default(("ingest", "webhook"), "--port"),
    )


def test_the_workers_rows_are_the_commands_defaults() -> None:
    metrics, sql = row("`availability stream`: `/metrics`"), row("`availability stream`: read-only SQL")
    assert (metrics.address, metrics.port) == (
        option_default(("stream",), "--web-host"),
        option_default(("stream",), "--web-port"),
    )
    assert (sql.address, sql.port) == option_default(("stream",), "--sql-listen")


def test_the_kafka_rows_are_the_dev_scripts_and_the_single_boxs() -> None:
    broker, controller = row("Kafka broker"), row("Kafka's KRaft controller")
    host = kafka_sh("HOST")
    assert (broker.address, broker.port) == (host, int(kafka_sh("PORT")))
    assert (controller.address, controller.port) == (host, int(kafka_sh("CONTROLLER_PORT")))
    listeners = re.search(r"^listeners=(.*)$", SERVER_PROPERTIES.read_text(), re.M)
    assert listeners is not None
    assert listeners.group(1).split(",") == [
        f"PLAINTEXT://{broker.address}:{broker.port}",
        f"CONTROLLER://{controller.address}:{controller.port}",
    ]
    assert f"CONTROLLER://:{controller.port}" in COMPOSE.read_text()  # the compose broker's too


def test_the_compose_stack_publishes_what_the_table_says() -> None:
    """Only the webhook and Grafana are published, on the addresses and ports of the table."""
    import yaml

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    webhook, grafana = row("`availability ingest webhook`"), row("Grafana of `deploy/compose`")
    assert published == {
        "webhook": [f"${{WEBHOOK_BIND_ADDRESS:-{webhook.address}}}:${{WEBHOOK_PORT:-{webhook.port}}}:8088"],
        "grafana": [f"${{GRAFANA_BIND_ADDRESS:-{grafana.address}}}:${{GRAFANA_PORT:-{grafana.port}}}:3000"],
    }


def test_ports_shared_by_two_rows_are_named_as_clashes() -> None:
    """Two listeners on one port must say so in "clashes with" (and so the page says what to do)."""
    rows = table()
    for a in rows:
        for b in rows:
            if a is not b and a.port == b.port:
                assert a.clashes != "–" and b.clashes != "–", f"{a.listener} and {b.listener} share {a.port}"
    ours = [r for r in rows if not r.listener.startswith(("Debian's", "`clickhouse-server`", "Grafana ("))]
    assert len({r.port for r in ours}) == len(ours), "two of the service's own listeners share a port"


# -- the Debian services, as installed ------------------------------------------------------------


def flag_default(binary: str, package: str, flag: str) -> str:
    """The default of `--flag` in the binary's --help (kingpin prints `--flag="value"` or `--flag=value`)."""
    path = shutil.which(binary)
    if path is None:
        unavailable(f"{binary} not installed (apt-get install {package})")
    result = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30)
    match = re.search(rf'--{re.escape(flag)}=("[^"]*"|\S+)', result.stdout + result.stderr)
    assert match, f"{binary} --help does not show a default for --{flag}"
    return match.group(1).strip('"')


def debian_args(package: str) -> str:
    """ARGS of /etc/default/PACKAGE, after checking the unit passes only $ARGS to the binary."""
    defaults, unit = Path("/etc/default") / package, Path("/lib/systemd/system") / f"{package}.service"
    if not defaults.is_file() or not unit.is_file():
        unavailable(f"{defaults} or {unit} missing (apt-get install {package})")
    assert re.search(rf"^ExecStart=/usr/bin/{package} \$ARGS$", unit.read_text(), re.M), unit
    match = re.search(r'^ARGS="(.*)"$', defaults.read_text(), re.M)
    assert match, defaults
    return match.group(1)


def split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return address(host), int(port)


@pytest.mark.parametrize(
    ("starts", "binary", "flag"),
    [
        ("Debian's `prometheus`", "prometheus", "web.listen-address"),
        ("Debian's `prometheus-alertmanager`: web", "prometheus-alertmanager", "web.listen-address"),
        ("Debian's `prometheus-alertmanager`: cluster", "prometheus-alertmanager", "cluster.listen-address"),
    ],
)
def test_the_debian_prometheus_rows_are_the_packages_defaults(starts: str, binary: str, flag: str) -> None:
    assert flag not in debian_args(binary)  # the package's ARGS leave the binary's default
    r = row(starts)
    assert (r.address, r.port) == split(flag_default(binary, binary, flag))


def test_the_dovecot_rows_are_the_installed_defaults() -> None:
    doveconf = shutil.which("doveconf")
    if doveconf is None:
        unavailable("doveconf not installed (apt-get install dovecot-imapd)")

    def conf(name: str) -> str:
        return subprocess.run([doveconf, "-h", name], capture_output=True, text=True, check=True).stdout.strip()

    assert "imap" in conf("protocols").split()
    for starts, listener in (
        ("Debian's `dovecot-imapd`: IMAP (", "imap"),
        ("Debian's `dovecot-imapd`: IMAPS", "imaps"),
    ):
        r = row(starts)
        where = conf(f"service/imap-login/inet_listener/{listener}/address") or conf("listen")
        assert (r.address, r.port) == (address(where), int(conf(f"service/imap-login/inet_listener/{listener}/port")))
