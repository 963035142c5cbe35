"""Hardening (issue #7) of the `availability` command: items 3, 4, 6, 13, 14 and 19, and bad
settings. Each user mistake is one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import socket
import stat
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import availability.cli as cli
import stream_jobs.core.deriver as deriver_module
from availability.cli import main
from stream_jobs.warehouse import Warehouse, redact
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.usefixtures("examples")  # without them: a skip locally, a failure in CI

AGREEMENTS = str(EXAMPLES / "agreements.yaml")
EVENTS = EXAMPLES / "events.jsonl"


@pytest.fixture(autouse=True)
def real_key(monkeypatch):
    """A key of full length, so stderr holds no development-key warning (only what is tested)."""
    monkeypatch.setenv("AVAILABILITY_PSEUDONYM_KEY", "hardening-cli-test-key-0123456789abcdef")


def process(warehouse: Path, *files: Path, extra: tuple[str, ...] = ()) -> int:
    return main(["process", *map(str, files), "--agreements", AGREEMENTS, "--warehouse", str(warehouse), *extra])


def report_args(warehouse: Path | str, *extra: str) -> list[str]:
    return ["report", "--month", "2026-04", "--agreements", AGREEMENTS, "--warehouse", str(warehouse), *extra]


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- item 3: an entity whose derivation raises is rejected with its lines -----------------------


def test_lines_of_a_call_that_cannot_be_derived_are_rejected_and_the_rest_stored(tmp_path, monkeypatch, capsys):
    real = deriver_module.derive_call

    def derive_call(call_id, events, agreements):
        if call_id == "p2":
            raise ValueError("cannot fold p2")
        return real(call_id, events, agreements)

    monkeypatch.setattr(deriver_module, "derive_call", derive_call)
    rejects = tmp_path / "rejects.jsonl"
    assert process(tmp_path / "w", EVENTS, extra=("--rejects", str(rejects))) == 2
    records = [json.loads(x) for x in rejects.read_text().splitlines()]
    # The example's call p2 is lines 5-8 (offered, queued, answered, ended).
    assert [(r["file"], r["line"]) for r in records] == [(str(EVENTS), n) for n in (5, 6, 7, 8)]
    assert {r["reason"] for r in records} == {"could not be derived (ValueError: cannot fold p2)"}
    assert json.loads(records[0]["event"])["id"] == "e0005"  # the line as it was in the file
    assert "28 accepted, 4 rejected" in capsys.readouterr().err
    with Warehouse.open(str(tmp_path / "w")) as wh:
        assert wh.query("SELECT count() FROM events") == [(28,)]
        assert wh.query("SELECT count() FROM events WHERE key = 'p2'") == [(0,)]


# -- item 4: --rejects never overwrites an input -------------------------------------------------


@pytest.mark.parametrize("alias", ["same", "symlink", "hardlink", "relative"])
def test_rejects_pointed_at_an_input_file_is_refused_and_the_input_kept(tmp_path, capsys, monkeypatch, alias):
    events = tmp_path / "events.jsonl"
    events.write_bytes(EVENTS.read_bytes() + b"{not json\n")
    before = events.read_bytes()
    target = {"same": events, "symlink": tmp_path / "link.jsonl", "hardlink": tmp_path / "hard.jsonl"}.get(
        alias, Path("events.jsonl")
    )
    if alias == "symlink":
        target.symlink_to(events)
    elif alias == "hardlink":
        target.hardlink_to(events)
    elif alias == "relative":
        monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert process(tmp_path / "w", events, extra=("--rejects", str(target))) == 1
    line = one_line(capsys.readouterr().err)
    assert line == f"availability: --rejects {target}: is the input file {events}; name another file"
    assert events.read_bytes() == before


def test_rejects_in_a_missing_directory_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nonexistent" / "dir" / "x"
    capsys.readouterr()
    assert process(tmp_path / "w", EVENTS, extra=("--rejects", str(missing))) == 1
    assert one_line(capsys.readouterr().err) == (
        f"availability: --rejects {missing}: cannot write (no such directory {missing.parent})"
    )
    assert not (tmp_path / "w").exists()  # checked before any work starts


# -- item 14: files with personal data are private ------------------------------------------------


def test_the_rejects_file_is_private_even_when_it_existed(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"caller": "+46701234567"\n')
    rejects = tmp_path / "rejects.jsonl"
    assert process(tmp_path / "w", bad, extra=("--rejects", str(rejects))) == 2
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    rejects.chmod(0o644)  # made by an earlier version, world-readable
    assert process(tmp_path / "w", bad, extra=("--rejects", str(rejects))) == 2
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    assert "+46701234567" in rejects.read_text()  # it holds raw personal data: hence 0600


def test_the_warehouse_directory_is_private(tmp_path):
    assert process(tmp_path / "new" / "w", EVENTS) == 0
    assert stat.S_IMODE((tmp_path / "new" / "w").stat().st_mode) == 0o700
    # A warehouse made by an earlier version (world-readable) is tightened when opened.
    (tmp_path / "new" / "w").chmod(0o755)
    assert process(tmp_path / "new" / "w", EVENTS) == 0
    assert stat.S_IMODE((tmp_path / "new" / "w").stat().st_mode) == 0o700
    # An empty directory the user made for it, too.
    (tmp_path / "empty").mkdir(mode=0o755)
    assert process(tmp_path / "empty", EVENTS) == 0
    assert stat.S_IMODE((tmp_path / "empty").stat().st_mode) == 0o700


def test_a_directory_holding_other_files_is_left_as_it_is(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    (home / "notes.txt").write_text("mine")
    assert process(home, EVENTS) == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o755  # not ours to change: only what we create


# -- item 13: no password in any error line; an unreachable server is one clear line ---------


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("http://kr:s3cret@127.0.0.1:8123/db", "http://***@127.0.0.1:8123/db"),
        ("https://kr:p%40ss@ch.example.se/db", "https://***@ch.example.se/db"),
        ("http://kr@127.0.0.1:8123", "http://***@127.0.0.1:8123"),
        ("http://127.0.0.1:8123/db", "http://127.0.0.1:8123/db"),
        ("/var/lib/availability", "/var/lib/availability"),
    ],
)
def test_redact_hides_the_user_and_password_of_a_url(target, shown):
    assert redact(target) == shown


@pytest.mark.parametrize("command", ["report", "process"])
def test_an_unreachable_clickhouse_is_one_line_without_the_password(tmp_path, capsys, command):
    port = closed_port()
    url = f"http://kr:s3cret-pw@127.0.0.1:{port}/availability"
    capsys.readouterr()
    if command == "report":
        code = main(report_args(url, "--format", "json"))
    else:
        code = main(["process", str(EVENTS), "--agreements", AGREEMENTS, "--warehouse", url])
    err = capsys.readouterr().err
    assert code == 1
    assert (
        one_line(err)
        == f"availability: --warehouse http://***@127.0.0.1:{port}/availability: cannot connect (Connection refused)"
    )
    assert "s3cret-pw" not in err and "Unexpected Http Driver Exception" not in err


def test_a_password_in_a_driver_message_is_redacted(monkeypatch):
    import clickhouse_connect

    def refuse(**kwargs):
        raise RuntimeError(f"Authentication failed for {kwargs['dsn']}: password s3cret-pw is incorrect")

    monkeypatch.setattr(clickhouse_connect, "get_client", refuse)
    with pytest.raises(cli.AvailabilityError) as err:
        Warehouse.open("http://kr:s3cret-pw@127.0.0.1:1/db")
    assert "s3cret-pw" not in str(err.value)
    assert str(err.value).startswith("--warehouse http://***@127.0.0.1:1/db: cannot open (Authentication failed")


# -- item 19: arguments outside what the warehouse can hold are one line ------------------------


@pytest.mark.parametrize("month", ["1989-06", "0001-01", "9999-12", "2100-01"])
def test_a_month_outside_the_accepted_range_is_one_line(tmp_path, capsys, month):
    args = ["report", "--month", month, "--agreements", AGREEMENTS, "--warehouse", str(tmp_path / "w")]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"invalid month '{month}' (expected YYYY-MM from 1990-01 to 2099-12)" in err


@pytest.mark.parametrize("as_of", ["1989-01-01T00:00:00Z", "2100-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00"])
def test_an_as_of_outside_the_accepted_range_is_one_line(tmp_path, capsys, as_of):
    with pytest.raises(SystemExit) as exit_:
        main(report_args(tmp_path / "w", "--as-of", as_of))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"invalid time '{as_of}' (outside 1990-01-01T00:00:00Z to 2100-01-01T00:00:00Z)" in err


def test_the_edges_of_the_range_are_accepted(tmp_path, capsys):
    assert process(tmp_path / "w", EVENTS) == 0
    for month in ("1990-01", "2099-12"):
        capsys.readouterr()
        args = ["report", "--month", month, "--agreements", AGREEMENTS, "--warehouse", str(tmp_path / "w")]
        assert main([*args, "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["month"] == month
    assert main(report_args(tmp_path / "w", "--format", "json", "--as-of", "1990-01-01T00:00:00Z")) == 0
    assert json.loads(capsys.readouterr().out)["evaluated_at"] == "1990-01-01T00:00:00Z"


# -- settings --------------------------------------------------------------------------------------


def test_a_short_pseudonym_key_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AVAILABILITY_PSEUDONYM_KEY", "short")
    capsys.readouterr()
    assert process(tmp_path / "w", EVENTS) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("availability: AVAILABILITY_PSEUDONYM_KEY is too short (5 bytes)")


def test_an_invalid_setting_is_one_line(tmp_path, capsys, monkeypatch):
    class Stricter(cli.Settings):
        batch_events: int = 1

    monkeypatch.setattr(cli, "Settings", Stricter)
    monkeypatch.setenv("AVAILABILITY_BATCH_EVENTS", "many")
    capsys.readouterr()
    assert process(tmp_path / "w", EVENTS) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("availability: invalid setting AVAILABILITY_BATCH_EVENTS: "), line
    assert "integer" in line


# -- item 6: a load that did not finish is named in the report ----------------------------------


def report_json(warehouse: Path, capsys) -> tuple[dict, str]:
    capsys.readouterr()
    assert main(report_args(warehouse, "--format", "json")) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def crash_during_apply(monkeypatch):
    def apply(self, events):
        raise RuntimeError("the machine lost power")

    monkeypatch.setattr(deriver_module.Deriver, "apply", apply)


def test_a_crashed_load_is_named_in_the_report_until_the_files_are_processed_again(tmp_path, capsys, monkeypatch):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    lines = EVENTS.read_text().splitlines(keepends=True)
    a.write_text("".join(lines[:16]))
    b.write_text("".join(lines[16:]))
    w = tmp_path / "w"
    Warehouse.open(str(w)).close()  # an empty warehouse (a report never makes one)

    report, err = report_json(w, capsys)
    assert report["incomplete_loads"] == [] and report["no_events"]
    assert one_line(err).startswith("availability: warning: No events for 2026-04")  # and nothing else

    started = datetime.now(UTC)
    with monkeypatch.context() as m:
        crash_during_apply(m)
        with pytest.raises(RuntimeError):  # a bug or a lost machine: the load never finishes
            process(w, a)
    report, err = report_json(w, capsys)
    (load,) = report["incomplete_loads"]
    assert load["files"] == [str(a.resolve())]
    at = datetime.fromisoformat(load["started_at"])
    assert started.replace(microsecond=0) <= at <= datetime.now(UTC) and load["started_at"].endswith("Z")
    local = at.astimezone(ZoneInfo("Europe/Stockholm")).strftime("%Y-%m-%d %H:%M")
    no_events, crashed = err.strip().splitlines()  # the crashed load stored nothing of the month
    assert no_events.startswith("availability: warning: No events for 2026-04")
    assert crashed == (
        f"availability: warning: A load started {local} did not finish ({a.resolve()}); these numbers may be "
        "partial. Run `availability process` again over those files (an interrupted `rederive`: run it again)."
    )

    capsys.readouterr()
    assert main(report_args(w, "--format", "table", "--lang", "en")) == 0
    assert "did not finish" in " ".join(capsys.readouterr().out.split())

    assert process(w, b) == 0  # another file does not clear it
    assert [x["files"] for x in report_json(w, capsys)[0]["incomplete_loads"]] == [[str(a.resolve())]]
    assert process(w, b, a) == 0  # a finished load over the same files (and more) does
    report, err = report_json(w, capsys)
    assert report["incomplete_loads"] == [] and err == ""
