"""The monthly report's deployment (deploy/report/): systemd accepts the service and the timer,
the timer fires at 07:00 Swedish time on days 1-7, and the cron line runs the same command at the
same times as the units.

`systemd-analyze verify` needs the ExecStart binary to exist, so the test verifies copies whose
ExecStart points at this venv's `availability`. Any message from verify fails the test (an
unknown key is only a warning there, with exit code 0), except one: the `availability` user that
the installation creates (README.md) need not exist on the test machine."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import unavailable

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "report"
SERVICE = DEPLOY / "availability-report.service"
TIMER = DEPLOY / "availability-report.timer"
CRONTAB = DEPLOY / "crontab"
INSTALLED = "/usr/local/bin/availability"
# What verify may say and still pass: the service user does not exist here.
ACCEPTED = (re.compile(r"user.*availability|availability.*user", re.IGNORECASE),)
MOST_EXPOSED = 4.0  # `systemd-analyze security` scale 0 (locked down) .. 10; "OK" is below 5


def unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections and their settings, in order (a key may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{path.name}: keep each setting on one line: {line}"
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def setting(path: Path, section: str, key: str) -> str:
    [value] = [v for k, v in unit(path)[section] if k == key]
    return value


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze") or (
        "/usr/bin/systemd-analyze" if Path("/usr/bin/systemd-analyze").exists() else None
    )
    if path is None:
        unavailable("systemd-analyze not installed (apt-get install systemd): it checks deploy/report's units")
    return path


def venv_availability() -> Path:
    script = Path(sys.executable).parent / "availability"
    if not script.exists():
        unavailable(f"no `availability` script beside {sys.executable}: pip install -e '.[dev]'")
    return script


@pytest.fixture
def units(tmp_path: Path) -> Path:
    """Copies of the service and timer, the service's ExecStart pointed at an existing binary."""
    text = SERVICE.read_text(encoding="utf-8")
    assert f"ExecStart={INSTALLED} " in text
    (tmp_path / SERVICE.name).write_text(text.replace(f"ExecStart={INSTALLED} ", f"ExecStart={venv_availability()} "))
    shutil.copy(TIMER, tmp_path / TIMER.name)
    return tmp_path


def test_systemd_verifies_the_service_and_the_timer(units: Path) -> None:
    done = subprocess.run(
        [systemd_analyze(), "verify", "--man=no", f"./{SERVICE.name}", f"./{TIMER.name}"],
        cwd=units, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    unexpected = [line for line in said if not any(p.search(line) for p in ACCEPTED)]
    assert done.returncode == 0 and not unexpected, "\n".join(said)


def test_the_service_is_locked_down(units: Path) -> None:
    """systemd's own exposure score of the service stays low (a hardening option lost shows)."""
    assert exposure(units, SERVICE.name) <= MOST_EXPOSED


def exposure(directory: Path, name: str) -> float:
    """`systemd-analyze security --offline` of the unit `name` in `directory`: 0 (locked down) .. 10."""
    done = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", f"./{name}"],
        cwd=directory, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if done.returncode != 0 and "offline" in done.stderr:
        unavailable(f"systemd-analyze security --offline is not supported here: {done.stderr.strip()}")
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert found, done.stdout + done.stderr
    return float(found.group(1))


def test_the_service_is_the_monthly_send() -> None:
    service = unit(SERVICE)["Service"]
    settings = dict(service)
    assert settings["Type"] == "oneshot"
    assert settings["User"] == "availability"
    assert settings["EnvironmentFile"] == "/etc/availability/availability.env"
    for key, value in {"ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes"}.items():
        assert settings[key] == value
    assert "/etc/availability" in settings["ReadOnlyPaths"].split()
    command = shlex.split(setting(SERVICE, "Service", "ExecStart"))
    assert command[0] == INSTALLED
    assert command[1:3] == ["report", "send"]
    assert command[command.index("--month") + 1] == "last"
    assert "--only-first-working-day" in command
    assert command[command.index("--to") + 1].count("@") == 1


def test_the_timer_fires_at_seven_on_days_one_to_seven() -> None:
    timer = dict(unit(TIMER)["Timer"])
    assert timer["Persistent"] == "true"
    assert timer["Unit"] == SERVICE.name
    done = subprocess.run(
        [systemd_analyze(), "calendar", "--iterations=24", timer["OnCalendar"]],
        capture_output=True, text=True, timeout=60, env={**os.environ, "TZ": "Europe/Stockholm"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    elapses = re.findall(r"(?:Next elapse|Iter\. #\d+): \w{3} (\d{4}-\d{2}-(\d{2}) \d\d:\d\d:\d\d) (\S+)", done.stdout)
    assert len(elapses) == 24, done.stdout
    for when, day, zone in elapses:
        assert 1 <= int(day) <= 7 and when.endswith(" 07:00:00") and zone in ("CET", "CEST"), done.stdout
    assert len({when[:7] for when, _, _ in elapses}) >= 3  # several months, seven days each


# -- cron ----------------------------------------------------------------------------------------------


FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


def cron_values(text: str, low: int, high: int) -> set[int]:
    """The values a cron field matches: `*`, `N`, `A-B`, `*/S`, `A-B/S` and lists of them."""
    values: set[int] = set()
    for part in text.split(","):
        span, _, step = part.partition("/")
        if span == "*":
            first, last = low, high
        else:
            first_text, _, last_text = span.partition("-")
            first, last = int(first_text), int(last_text or first_text)
        assert low <= first <= last <= high, f"{text!r} is outside {low}-{high}"
        values.update(range(first, last + 1, int(step) if step else 1))
    return values


def cron_job() -> tuple[dict[str, str], list[str], str, str]:
    """The crontab's variables, its one job's five time fields, its user and its command."""
    variables: dict[str, str] = {}
    jobs: list[str] = []
    for raw in CRONTAB.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if re.match(r"^[A-Z_]+=", line):
            name, _, value = line.partition("=")
            variables[name] = value
        else:
            jobs.append(line)
    [job] = jobs
    parts = job.split(None, 6)
    assert len(parts) == 7, f"not 5 time fields, a user and a command: {job}"
    return variables, parts[:5], parts[5], parts[6]


def test_the_cron_line_parses_and_matches_the_timer() -> None:
    variables, fields, user, command = cron_job()
    matched = [cron_values(text, low, high) for text, (_, low, high) in zip(fields, FIELDS, strict=True)]
    assert matched[:4] == [{0}, {7}, set(range(1, 8)), set(range(1, 13))]
    assert matched[4] == set(range(8))  # any weekday: a restricted one would OR with the days
    assert variables["CRON_TZ"] == "Europe/Stockholm"
    assert setting(TIMER, "Timer", "OnCalendar") == "*-*-01..07 07:00 " + variables["CRON_TZ"]
    assert user == setting(SERVICE, "Service", "User")
    assert "%" not in command  # cron would turn it into a newline


def test_the_cron_command_is_the_service_command() -> None:
    _, _, _, command = cron_job()
    environment = setting(SERVICE, "Service", "EnvironmentFile")
    assert f". {environment} " in command  # cron reads no EnvironmentFile: the line loads it
    run = shlex.split(command.split(" exec ", 1)[1])
    unit_command = shlex.split(setting(SERVICE, "Service", "ExecStart"))
    assert Path(run[0]).name == Path(unit_command[0]).name == "availability"
    assert run[1:] == unit_command[1:]
