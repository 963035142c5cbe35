"""The single-box deployment (deploy/single-box/): systemd accepts its units and scores them as
locked down, each unit's command line is one the real `availability` parser accepts (with the
example settings filled in as systemd would), install.sh stages every file with the right modes
and changes nothing the second time, the scrape jobs pass `promtool check config` once merged
into Debian's Prometheus configuration, and the Kafka unit's commands with the shipped
server.properties run a broker that takes the topics.

As in tests/reporting/test_deploy_report.py, `systemd-analyze verify` checks copies whose
ExecStart points at binaries that exist here (this venv's `availability`, this machine's java);
any message fails, except the missing `availability` user, which install.sh creates."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port, unavailable
from tests.reporting.test_deploy_report import (
    ACCEPTED,
    INSTALLED,
    MOST_EXPOSED,
    exposure,
    setting,
    systemd_analyze,
    unit,
    venv_availability,
)

ROOT = Path(__file__).resolve().parents[2]
BOX = ROOT / "deploy" / "single-box"
INSTALL = BOX / "install.sh"
STREAM = BOX / "availability-stream.service"
WEBHOOK = BOX / "availability-webhook.service"
IMAP = BOX / "availability-imap@.service"
KAFKA = BOX / "availability-kafka.service"
QUEUE_LOG = BOX / "availability-queue-log.service"
SERVICES = (STREAM, WEBHOOK, IMAP, KAFKA, QUEUE_LOG)
REPORT = (
    ROOT / "deploy" / "report" / "availability-report.service",
    ROOT / "deploy" / "report" / "availability-report.timer",
)
ENV_EXAMPLE = BOX / "availability.env.example"
IMAP_EXAMPLE = BOX / "imap.env.example"
QUEUE_LOG_EXAMPLE = BOX / "queue-log.env.example"
MAILBOX = "kundreskontra"  # a mailbox of the shipped agreements
JAVA = "/usr/bin/java"
SECRET = "ab" * 32  # what install.sh's `openssl rand -hex 32` looks like


def java() -> str:
    found = shutil.which("java")
    if found is None:
        unavailable("java not installed (apt-get install openjdk-17-jre-headless): the Kafka unit runs it")
    return found


def instance_name(path: Path) -> str:
    """The file name systemd is given for a unit: a template as its MAILBOX instance."""
    return path.name.replace("@.", f"@{MAILBOX}.")


def runnable_copies(folder: Path, paths: tuple[Path, ...] = SERVICES) -> list[str]:
    """Copies of the units in `folder` whose programs exist here; returns their file names."""
    names = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        text = text.replace(f"={INSTALLED} ", f"={venv_availability()} ").replace(f"={JAVA} ", f"={java()} ")
        (folder / instance_name(path)).write_text(text, encoding="utf-8")
        names.append(instance_name(path))
    return names


def verify(folder: Path, names: list[str]) -> list[str]:
    """What `systemd-analyze verify` says about the units, but for the accepted missing user;
    a failing exit code is a message too."""
    done = subprocess.run(
        [systemd_analyze(), "verify", "--man=no", *(f"./{name}" for name in names)],
        cwd=folder, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    unexpected = [line for line in said if not any(p.search(line) for p in ACCEPTED)]
    if done.returncode != 0 and not unexpected:
        unexpected = [f"exit code {done.returncode}", *said]
    return unexpected


# -- systemd ---------------------------------------------------------------------------------------------


def test_systemd_verifies_every_unit(tmp_path: Path) -> None:
    names = runnable_copies(tmp_path, (*SERVICES, *REPORT))
    assert verify(tmp_path, names) == []


def test_a_misspelt_key_fails_the_verify_check(tmp_path: Path) -> None:
    """The check above can fail: systemd only warns about an unknown key (exit code 0)."""
    [name] = runnable_copies(tmp_path, (STREAM,))
    copy = tmp_path / name
    copy.write_text(copy.read_text(encoding="utf-8").replace("\nRestartSec=", "\nRestartSecs="), encoding="utf-8")
    said = verify(tmp_path, [name])
    assert any("RestartSecs" in line for line in said), said


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.name)
def test_each_service_is_locked_down(tmp_path: Path, path: Path) -> None:
    [name] = runnable_copies(tmp_path, (path,))
    assert exposure(tmp_path, name) <= MOST_EXPOSED


def test_the_services_run_as_the_service_user_and_restart() -> None:
    for path in SERVICES:
        settings = dict(unit(path)["Service"])
        assert (settings["Type"], settings["User"], settings["Restart"]) == ("simple", "availability", "on-failure")
        assert settings["ProtectSystem"] == "strict" and settings["NoNewPrivileges"] == "yes", path.name
        if path != KAFKA:  # started after the broker listens (its ExecStartPost waits for the port)
            assert "availability-kafka.service" in setting(path, "Unit", "After").split(), path.name
    assert setting(STREAM, "Service", "TimeoutStopSec") == "60"
    assert setting(STREAM, "Service", "ReadWritePaths") == "/var/lib/availability"
    # The JVM's exit after SIGTERM is a clean stop (test_the_kafka_unit_runs_a_broker sees the code).
    assert setting(KAFKA, "Service", "SuccessExitStatus") == "143"


# -- the command lines -----------------------------------------------------------------------------------


def env_file(path: Path, **filled: str) -> dict[str, str]:
    """An environment file's NAME=value lines as systemd reads them (surrounding quotes removed),
    each @NAME@ placeholder replaced by filled[NAME] (install.sh puts fresh secrets there)."""
    values = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"{path.name}: {raw}"
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values[name] = re.sub(r"@([A-Z_]+)@", lambda m: filled[m.group(1)], value)
    return values


def example_environment(**imap: str) -> dict[str, str]:
    secrets = {"PSEUDONYM_KEY": SECRET, "WEBHOOK_TOKEN": SECRET, "SQL_PASSWORD": SECRET}
    return {**env_file(ENV_EXAMPLE, **secrets), **env_file(IMAP_EXAMPLE), **imap}


def systemd_argv(command: str, environment: dict[str, str]) -> list[str]:
    """ExecStart= as systemd runs it (systemd.service "Command lines"): `%i` is the instance,
    `${NAME}` is replaced by the value as one argument (empty too), and `$NAME` alone as a word
    by the value split at whitespace (zero or more arguments)."""
    argv: list[str] = []
    for word in shlex.split(command.replace("%i", MAILBOX)):
        alone = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if alone:
            argv.extend(environment.get(alone.group(1), "").split())
            continue
        missing = [name for name in re.findall(r"\$\{(\w+)\}", word) if name not in environment]
        assert not missing, f"{command}: {missing} is set by no environment file"
        argv.append(re.sub(r"\$\{(\w+)\}", lambda m: environment[m.group(1)], word))
    return argv


Parse = Callable[[Path, dict[str, str]], Namespace]


def only(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> None:
    """The process environment holds these settings and no other AVAILABILITY_* or KAFKA_*."""
    for name in list(os.environ):
        if name.startswith(("AVAILABILITY_", "KAFKA_")):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def parse(monkeypatch: pytest.MonkeyPatch) -> Parse:
    """Parses a unit's ExecStart with the real `availability` parser, built from the settings
    the example environment files give (as the unit's process would read them)."""

    def run(path: Path, environment: dict[str, str]) -> Namespace:
        from availability.cli import _parser
        from availability.settings import Settings

        only(monkeypatch, environment)
        argv = systemd_argv(setting(path, "Service", "ExecStart"), environment)
        assert argv[0] == INSTALLED
        said = io.StringIO()
        with contextlib.redirect_stderr(said):
            try:
                return _parser(Settings()).parse_args(argv[1:])
            except SystemExit:
                pytest.fail(f"{path.name}: `availability` refuses {shlex.join(argv[1:])}: {said.getvalue()}")

    return run


def test_the_worker_command_parses(parse: Parse) -> None:
    args = parse(STREAM, example_environment())
    assert args.run.__name__ == "cmd_stream"
    assert (args.warehouse, args.web_port) == ("/var/lib/availability/warehouse", 6066)
    assert args.web_host == "127.0.0.1"  # /metrics for this machine only: Prometheus scrapes localhost
    if hasattr(args, "sql_listen"):  # the read-only SQL interface: its default is the box's
        assert args.sql_listen == ("127.0.0.1", 8123)


def test_the_webhook_command_parses(parse: Parse) -> None:
    args = parse(WEBHOOK, example_environment())
    assert args.run.__name__ == "cmd_ingest_webhook"
    assert (args.host, args.port, args.allow_anonymous) == ("127.0.0.1", 8088, False)


def test_the_imap_command_parses_with_the_mailbox_settings(parse: Parse) -> None:
    args = parse(IMAP, example_environment())
    assert args.run.__name__ == "cmd_ingest_imap"
    assert (args.mailbox, args.host, args.port, args.user) == (
        MAILBOX,
        "imap.example.se",
        143,
        "kundreskontra@example.se",
    )
    assert (args.inbox, args.sent, args.done) == ("INBOX", "Skickade objekt", "Klart")  # a space stays in one argument
    assert (args.ssl, args.tls_ca, args.insecure_plaintext) == (False, None, False)
    # The checkpoint lies in the unit's StateDirectory (created and writable under ProtectSystem=strict).
    state = Path("/var/lib") / setting(IMAP, "Service", "StateDirectory")
    assert Path(args.checkpoint) == state / f"{MAILBOX}.checkpoint.json"

    args = parse(IMAP, example_environment(IMAP_OPTIONS="--ssl --tls-ca /etc/availability/imap/ca.pem", IMAP_DONE=""))
    assert (args.ssl, args.tls_ca, args.done) == (True, "/etc/availability/imap/ca.pem", "")  # "": no done folder


def test_the_queue_log_command_parses_with_its_settings(parse: Parse) -> None:
    args = parse(QUEUE_LOG, {**example_environment(), **env_file(QUEUE_LOG_EXAMPLE)})
    assert args.run.__name__ == "cmd_follow_queue_log"
    assert args.follow == "/var/log/asterisk/queue_log"
    assert args.queue_map == [("6001", "kundreskontra"), ("6002", "avgifter")]  # split at spaces into options
    state = Path("/var/lib") / setting(QUEUE_LOG, "Service", "StateDirectory")
    assert Path(args.checkpoint).parent == state
    # Enabled without its settings file, the unit does not start (and does not fail).
    assert setting(QUEUE_LOG, "Unit", "ConditionPathExists") == "/etc/availability/queue-log.env"


def test_a_misspelt_option_fails_the_parse_check(parse: Parse, tmp_path: Path) -> None:
    """The checks above can fail: an option the command does not have is refused."""
    broken = tmp_path / WEBHOOK.name
    broken.write_text(WEBHOOK.read_text(encoding="utf-8").replace(" --port 8088", " --prot 8088"), encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match="unrecognized arguments: --prot"):
        parse(broken, example_environment())


def test_the_environment_files_hold_only_settings_the_program_reads() -> None:
    from availability.settings import Settings

    read = {f"AVAILABILITY_{name.upper()}" for name in Settings.model_fields} | {"KAFKA_BOOTSTRAP_SERVERS"}
    read |= {"AVAILABILITY_SQL_USER", "AVAILABILITY_SQL_PASSWORD"}  # `stream --sql-listen`'s login
    # Commented-out lines count too: they are there to be switched on.
    named = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(encoding="utf-8"), re.MULTILINE))
    assert named - read == set()
    assert {"AVAILABILITY_PSEUDONYM_KEY", "AVAILABILITY_WEBHOOK_TOKEN", "AVAILABILITY_MANAGERS"} <= named
    # The mailbox file: the password the program reads, and the IMAP_* the unit's command line uses.
    imap = env_file(IMAP_EXAMPLE)
    used = set(re.findall(r"\$\{?(IMAP_\w+)", setting(IMAP, "Service", "ExecStart")))
    assert set(imap) == used | {"AVAILABILITY_IMAP_PASSWORD"}
    follower = env_file(QUEUE_LOG_EXAMPLE)
    assert set(follower) == set(re.findall(r"\$\{?(QUEUE_LOG_\w+)", setting(QUEUE_LOG, "Service", "ExecStart")))


def test_the_example_settings_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    from availability.settings import Settings

    environment = example_environment()
    only(monkeypatch, environment)
    settings = Settings()
    assert len(settings.pseudonym_key_bytes()) >= 32 and not settings.uses_development_key
    assert environment["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9092"
    assert environment["AVAILABILITY_WAREHOUSE"].startswith("http://127.0.0.1:8123/")


# -- install.sh ------------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and link under root: mode, modification time and content (or link target)."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            content = "-> " + os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:  # a directory's time changes with any file made and removed in it
            found[str(path.relative_to(root))] = (stat.S_IMODE(info.st_mode), 0, "directory")
            continue
        found[str(path.relative_to(root))] = (stat.S_IMODE(info.st_mode), info.st_mtime_ns, content)
    return found


def install(destdir: Path) -> str:
    done = subprocess.run(
        [str(INSTALL)], env={**os.environ, "DESTDIR": str(destdir), "PYTHON": sys.executable, "PROGRAM": str(venv_availability())},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


DEBIAN_SAMPLE = """\
global:
  scrape_interval: 15s
alerting:
  alertmanagers:
  - static_configs:
    - targets: ['localhost:9093']
rule_files:
scrape_configs:
  - job_name: 'prometheus'
    static_configs:
      - targets: ['localhost:9090']
"""


def debian_prometheus_config() -> str:
    """The configuration Debian's prometheus package installs (a short likeness without it)."""
    shipped = Path("/etc/prometheus/prometheus.yml")
    return shipped.read_text(encoding="utf-8") if shipped.is_file() else DEBIAN_SAMPLE


def test_install_stages_the_box_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/prometheus").mkdir(parents=True)
    (root / "etc/prometheus/prometheus.yml").write_text(debian_prometheus_config(), encoding="utf-8")
    said = install(root)
    for skipped in ("apt-get install", "useradd", "pip install", "mvn", "systemctl", "topics create"):
        assert re.search(rf"^  - .*{skipped}", said, re.MULTILINE), f"no line says {skipped!r} was skipped:\n{said}"

    etc = root / "etc/availability"
    assert mode(etc / "availability.env") == 0o640 and mode(etc) == 0o750
    assert mode(root / "var/lib/availability") == 0o700
    for name in ("agreements.yaml", "managers.yaml", "kafka/kafka.env", "kafka/server.properties", "imap"):
        assert (etc / name).exists(), name
    assert os.readlink(root / INSTALLED.lstrip("/")) == "/opt/availability/venv/bin/availability"
    for path in (*SERVICES, *REPORT):  # the report's units as they are in deploy/report/
        assert (root / "etc/systemd/system" / path.name).read_bytes() == path.read_bytes(), path.name
    # Every unit's settings file is one install.sh makes (the mailbox files and the queue_log
    # follower's come from the admin; the follower's unit does not start without it).
    for path in (*SERVICES, REPORT[0]):
        for _, value in (kv for kv in unit(path)["Service"] if kv[0] == "EnvironmentFile"):
            optional = "%i" in value or value == setting(QUEUE_LOG, "Unit", "ConditionPathExists")
            assert optional or (root / value.lstrip("/")).is_file(), value

    # Fresh secrets, each its own, that the program accepts and sh can read (the cron line does).
    secrets = env_file(etc / "availability.env")
    for name in ("AVAILABILITY_PSEUDONYM_KEY", "AVAILABILITY_WEBHOOK_TOKEN", "AVAILABILITY_SQL_PASSWORD"):
        assert re.fullmatch(r"[0-9a-f]{64}", secrets[name]), name
    assert len({secrets["AVAILABILITY_PSEUDONYM_KEY"], secrets["AVAILABILITY_WEBHOOK_TOKEN"]}) == 2
    shell = subprocess.run(
        ["sh", "-c", 'set -a; . "$0"; set +a; printf %s "$AVAILABILITY_PSEUDONYM_KEY"', str(etc / "availability.env")],
        capture_output=True, text=True, timeout=10, env={"PATH": os.environ["PATH"]},
    )  # fmt: skip
    assert shell.returncode == 0 and shell.stdout == secrets["AVAILABILITY_PSEUDONYM_KEY"], shell.stderr
    assert re.fullmatch(
        r"KAFKA_CLUSTER_ID=[A-Za-z0-9_][A-Za-z0-9_-]{21}", (etc / "kafka/kafka.env").read_text().splitlines()[-1]
    )

    # The merged Prometheus configuration keeps Debian's job and loads the rules.
    config = yaml.safe_load((root / "etc/prometheus/prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"prometheus", "availability-stream", "availability-webhook"} <= jobs
    assert (root / "etc/prometheus" / config["rule_files"][0]).is_file()
    assert (root / "etc/prometheus/prometheus.yml.before-availability").read_text() == debian_prometheus_config()
    # The rules and Alertmanager's configuration, generated from the staged (shipped) agreements and
    # managers (not copied from the checkout), are the committed ones but for their headers.
    assert "generating the alert rules" not in said
    for staged, committed in (
        ("etc/prometheus/rules/availability.rules.yml", "deploy/prometheus/rules/availability.rules.yml"),
        ("etc/prometheus/alertmanager.yml", "deploy/alertmanager/alertmanager.yml"),
    ):
        assert yaml.safe_load((root / staged).read_text()) == yaml.safe_load((ROOT / committed).read_text()), staged

    # Again, with a mailbox added: nothing changes (not even a time stamp), no secret is replaced,
    # and the mailbox's poller is among the units it would start.
    before = snapshot(root)
    mailbox = etc / "imap" / f"{MAILBOX}.env"
    shutil.copy(IMAP_EXAMPLE, mailbox)
    said = install(root)
    assert {k: v for k, v in snapshot(root).items() if k != str(mailbox.relative_to(root))} == before
    assert f"availability-imap@{MAILBOX}.service" in said
    assert "installed" not in said


def test_install_sh_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        unavailable("shellcheck not installed (apt-get install shellcheck): it checks deploy/single-box/install.sh")
    done = subprocess.run([shellcheck, str(INSTALL)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# -- Prometheus ------------------------------------------------------------------------------------------


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        unavailable("promtool not installed (apt-get install prometheus): it checks the scrape jobs")
    return found


def test_the_scrape_jobs_pass_promtool_merged_into_debians_configuration(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    shutil.copy(ROOT / "deploy/prometheus/rules/availability.rules.yml", tmp_path / "rules")
    original = tmp_path / "prometheus.yml"
    original.write_text(debian_prometheus_config(), encoding="utf-8")
    merge = [sys.executable, str(BOX / "prometheus_merge.py")]
    done = subprocess.run(
        [*merge, str(original), str(BOX / "prometheus-scrape.yml"), "rules/availability.rules.yml", str(tmp_path / "merged.yml")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "changed", done.stdout + done.stderr
    checked = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "merged.yml")], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout + checked.stderr
    again = subprocess.run(
        [*merge, str(tmp_path / "merged.yml"), str(BOX / "prometheus-scrape.yml"), "rules/availability.rules.yml", str(tmp_path / "again.yml")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert again.stdout.strip() == "unchanged", again.stdout + again.stderr


def test_the_scrape_jobs_are_deploy_prometheus_ones() -> None:
    """The same jobs and targets as deploy/prometheus/prometheus.yml, the worker's on its --web-port."""

    def jobs(path: Path) -> dict[str, list[str]]:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        return {j["job_name"]: [t for s in j["static_configs"] for t in s["targets"]] for j in config["scrape_configs"]}

    box = jobs(BOX / "prometheus-scrape.yml")
    assert box == jobs(ROOT / "deploy/prometheus/prometheus.yml")
    port = shlex.split(setting(STREAM, "Service", "ExecStart"))
    assert box["availability-stream"] == [f"localhost:{port[port.index('--web-port') + 1]}"]


# -- Kafka -----------------------------------------------------------------------------------------------


def kafka_sh_pom(tmp_path: Path) -> Path:
    """The pom deploy/dev/kafka.sh writes, written by its own write_pom."""
    script = (ROOT / "deploy/dev/kafka.sh").read_text(encoding="utf-8")
    functions = tmp_path / "kafka-functions.sh"
    functions.write_text(script[: script.index('\ncase "${1:-}" in')], encoding="utf-8")
    done = subprocess.run(
        ["bash", "-c", 'source "$1"; DIST_DIR="$2"; write_pom', "_", str(functions), str(tmp_path)],
        capture_output=True, text=True, timeout=30, env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return tmp_path / "pom.xml"


def artifacts(pom: Path) -> list[tuple[str, ...]]:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(pom).getroot()
    found = []
    for dep in root.iterfind(".//m:dependency", ns):
        parts = [dep.findtext(f"m:{tag}", "", ns) for tag in ("groupId", "artifactId", "version")]
        excluded = sorted(e.findtext("m:artifactId", "", ns) for e in dep.iterfind(".//m:exclusion", ns))
        found.append((*parts, *excluded))
    for plugin in root.iterfind(".//m:plugin", ns):
        found.append(tuple(plugin.findtext(f"m:{tag}", "", ns) for tag in ("groupId", "artifactId", "version")))
    return found


def test_the_kafka_jars_are_the_dev_brokers(tmp_path: Path) -> None:
    assert artifacts(BOX / "kafka/pom.xml") == artifacts(kafka_sh_pom(tmp_path))


def test_the_kafka_unit_runs_a_broker(tmp_path: Path) -> None:
    """ExecStartPre (format), ExecStart and ExecStartPost (wait until it listens) of the unit,
    with the shipped server.properties moved to free ports and a temporary data directory and
    the jars of deploy/dev/kafka.sh's cache (the same pom): a KRaft broker that takes the
    topics with auto-creation off, and stops cleanly on SIGTERM."""
    libs = Path(os.environ.get("KAFKA_DEV_HOME", Path.home() / ".cache/availability-kafka")) / "kafka-4.4.0/libs"
    if not (libs / ".complete").exists():
        unavailable(f"no Kafka jars in {libs}: `deploy/dev/kafka.sh start` fetches them once")
    broker, controller = free_port(), free_port()
    config = (BOX / "kafka/server.properties").read_text(encoding="utf-8")
    for shipped in ("127.0.0.1:9092", "127.0.0.1:19093", "=/var/lib/availability/kafka/kraft-logs"):
        assert shipped in config
    config = config.replace("127.0.0.1:9092", f"127.0.0.1:{broker}").replace(
        "127.0.0.1:19093", f"127.0.0.1:{controller}"
    )
    (tmp_path / "server.properties").write_text(
        config.replace("=/var/lib/availability/kafka/kraft-logs", f"={tmp_path}/kraft-logs"), encoding="utf-8"
    )
    cluster = base64.urlsafe_b64encode(b"single-box-test!").decode().rstrip("=")
    paths = {
        "/opt/availability/kafka/libs": str(libs),
        "/etc/availability/kafka/server.properties": str(tmp_path / "server.properties"),
        "/etc/availability/kafka/log4j2.xml": str(BOX / "kafka/log4j2.xml"),
        "${KAFKA_CLUSTER_ID}": cluster,
        "/dev/tcp/127.0.0.1/9092": f"/dev/tcp/127.0.0.1/{broker}",
    }

    def command(key: str) -> list[str]:
        line = setting(KAFKA, "Service", key)
        for old, new in paths.items():
            line = line.replace(old, new)
        argv = shlex.split(line)
        return [java(), *argv[1:]] if argv[0] == JAVA else argv

    formatted = subprocess.run(command("ExecStartPre"), capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    log = (tmp_path / "kafka.log").open("w")
    process = subprocess.Popen(command("ExecStart"), stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        waited = subprocess.run(command("ExecStartPost"), timeout=60, capture_output=True)
        assert waited.returncode == 0
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AVAILABILITY_", "KAFKA_"))}
        created = subprocess.run(
            [str(venv_availability()), "topics", "create"], capture_output=True, text=True, timeout=60,
            env={**env, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker}"},
        )  # fmt: skip
        assert created.returncode == 0, created.stdout + created.stderr + (tmp_path / "kafka.log").read_text()
        assert "availability.calls" in created.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code: int | None
        try:
            code = process.wait(timeout=int(setting(KAFKA, "Service", "TimeoutStopSec")))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = None
        log.close()
    assert code is not None, f"no exit {time.monotonic() - started:.0f} s after SIGTERM"
    assert code in (0, int(setting(KAFKA, "Service", "SuccessExitStatus"))), (tmp_path / "kafka.log").read_text()
