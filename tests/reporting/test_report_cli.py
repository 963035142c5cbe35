"""`availability report` in every format and `report send`, end to end through the command on the
embedded engine: the spec's worked example processed, then each file the command writes holds
exactly the numbers of the JSON it prints; the mail reaches a real SMTP server (aiosmtpd) with
both attachments; the demo writes the workbook and the page beside the JSON."""

from __future__ import annotations

import csv
import io
import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml

from availability.cli import main
from dashboards.reporting import model
from schemas.agreements import Agreements, load_agreements
from stream_jobs.warehouse import Warehouse
from tests.conftest import EXAMPLES
from tests.reporting.test_html import assert_every_number_has_its_cell
from tests.reporting.test_mail import StartServer, smtp_server  # noqa: F401 (a fixture)
from tests.reporting.test_xlsx import assert_every_number_in_place, read

pytestmark = pytest.mark.usefixtures("examples")

AGREEMENTS = str(EXAMPLES / "agreements.yaml")
AS_OF = "2026-06-01T07:00:00+02:00"  # the first working day of June, 07:00 local


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = tmp_path_factory.mktemp("cli") / "w"
    events = str(EXAMPLES / "events.jsonl")
    assert main(["process", events, "--agreements", AGREEMENTS, "--warehouse", str(w)]) == 0
    return w


@pytest.fixture(scope="module")
def agreements() -> Agreements:
    return load_agreements(AGREEMENTS)


def report(warehouse: Path, *extra: str) -> int:
    args = ["report", "--month", "2026-04", "--agreements", AGREEMENTS, "--warehouse", str(warehouse)]
    return main([*args, "--as-of", AS_OF, *extra])


@pytest.fixture(scope="module")
def printed(warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("json") / "r.json"
    assert report(warehouse, "--out", str(out)) == 0  # the format from the extension
    parsed: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return parsed


@pytest.mark.parametrize("lang", model.LANGS)
def test_the_workbook_holds_the_numbers_of_the_json(warehouse, printed, agreements, tmp_path, lang):
    out = tmp_path / "r.xlsx"
    assert report(warehouse, "--out", str(out), "--lang", lang) == 0
    assert_every_number_in_place(printed, agreements, lang, read(out.read_bytes()))


def test_the_workbook_is_swedish_by_default(warehouse, tmp_path):
    out = tmp_path / "r.xlsx"
    assert report(warehouse, "--format", "xlsx", "--out", str(out)) == 0
    assert openpyxl.load_workbook(out).sheetnames[0] == model.text("summary", "sv")


@pytest.mark.parametrize("lang", model.LANGS)
def test_the_page_holds_the_numbers_of_the_json(warehouse, printed, agreements, tmp_path, lang):
    out = tmp_path / "r.html"
    assert report(warehouse, "--out", str(out), "--lang", lang) == 0
    assert_every_number_has_its_cell(printed, agreements, lang, out.read_text(encoding="utf-8"))


def test_the_csv_holds_the_numbers_of_the_json(warehouse, printed, agreements, capsys):
    capsys.readouterr()
    assert report(warehouse, "--format", "csv") == 0
    text = capsys.readouterr().out
    assert text.startswith("\ufeff")  # Excel reads it as UTF-8
    got = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    want = list(model.rows(printed, agreements, "sv"))
    assert len(got) == len(want)
    for row, expected in zip(got, want, strict=True):
        assert (row["process"], row["view"], row["period"], row["measure"]) == (
            expected.process, expected.view, expected.period, expected.measure,
        )  # fmt: skip
        assert row["value"] == ("" if expected.value is None else repr(expected.value))


def test_the_table_written_to_a_file_is_swedish_and_120_columns_wide(warehouse, printed, agreements, tmp_path):
    out = tmp_path / "r.txt"
    assert report(warehouse, "--out", str(out)) == 0
    text = out.read_text(encoding="utf-8")
    assert max(len(line) for line in text.splitlines()) <= 120  # a file gets 120 columns
    assert model.text("phone", "sv") in text and "\x1b[" not in text


def test_the_json_keeps_the_spec_keys_and_says_the_month_has_events(printed):
    assert printed["month"] == "2026-04" and printed["no_events"] is False
    assert printed["agreements_changed"] == []
    assert set(printed["views"]) == {"days", "hours", "months"}


def test_an_empty_month_is_a_line_on_the_terminal_and_a_field(warehouse, capsys):
    capsys.readouterr()
    assert main(["report", "--month", "2025-01", "--agreements", AGREEMENTS, "--warehouse", str(warehouse)]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["no_events"] is True
    assert out.err.startswith("availability: warning: No events for 2025-01")


def test_a_report_never_creates_a_warehouse(tmp_path, capsys):
    missing = tmp_path / "nothing-here"
    capsys.readouterr()
    code = main(["report", "--month", "2026-04", "--warehouse", str(missing)])
    assert code == 1 and not missing.exists()
    assert capsys.readouterr().err == (
        f"availability: --warehouse {missing}: holds no warehouse (`availability process`, `stream` or `demo` "
        "makes one)\n"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", "--month", "2026-04", "--warehouse", str(empty)]) == 1
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize("month", ["2026-4", "26-04", "2026-13", "april"])
def test_the_month_must_be_yyyy_mm(warehouse, month, capsys):
    with pytest.raises(SystemExit) as exit_:
        report_args = ["report", "--month", month, "--warehouse", str(warehouse)]
        main(report_args)
    assert exit_.value.code == 2
    assert f"invalid month '{month}' (expected YYYY-MM" in capsys.readouterr().err


def test_a_binary_format_to_a_terminal_asks_for_a_file(warehouse, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    capsys.readouterr()
    assert report(warehouse, "--format", "xlsx") == 1
    assert "xlsx is a binary file: give --out FILE.xlsx" in capsys.readouterr().err


def test_other_agreements_are_named_on_the_terminal(warehouse, tmp_path, capsys):
    raw = yaml.safe_load(Path(AGREEMENTS).read_text(encoding="utf-8"))
    queue = next(iter(raw["queues"]))
    raw["queues"][queue]["service_level_seconds"] = 45
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    capsys.readouterr()
    code = main(["report", "--month", "2026-04", "--agreements", str(other), "--warehouse", str(warehouse)])
    out = capsys.readouterr()
    assert code == 0
    assert json.loads(out.out)["agreements_changed"] == [
        {
            "channel": "queues",
            "process": queue,
            "setting": "service_level_seconds",
            "measures": ["service_level"],
            "months": ["2026-04"],
        }
    ]
    assert "derived with other service agreements" in out.err and f"--agreements {other}" in out.err


# -- report send ----------------------------------------------------------------------------------------


def managers_file(tmp_path: Path, smarthost: str) -> Path:
    path = tmp_path / "managers.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "smtp": {"smarthost": smarthost, "from": "tillganglighet@example.se", "require_tls": False},
                "chat_webhook_url": "https://chat.example.se/hooks/x",
                "default": ["servicecenter@example.se"],
            }
        ),
        encoding="utf-8",
    )
    return path


def send(warehouse: Path, managers: Path, *extra: str) -> int:
    return main(
        ["report", "send", "--to", "chef@example.se", "controller@example.se", "--managers", str(managers),
         "--agreements", AGREEMENTS, "--warehouse", str(warehouse), *extra]
    )  # fmt: skip


def test_send_mails_last_month_with_both_attachments(warehouse, agreements, smtp_server, tmp_path, capsys):  # noqa: F811
    sink, smarthost = smtp_server()
    capsys.readouterr()
    assert (
        send(warehouse, managers_file(tmp_path, smarthost), "--month", "last", "--as-of", "2026-05-04T07:00:00+02:00")
        == 0
    )
    assert "sent the report of 2026-04" in capsys.readouterr().err
    (mail,) = sink.received
    assert mail.recipients == ["chef@example.se", "controller@example.se"]
    message: EmailMessage = mail.message
    assert message["From"] == "tillganglighet@example.se" and "2026-04" in message["Subject"]
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    for _, name in model.processes(agreements):
        assert name in text
    attachments = {part.get_filename(): part for part in message.iter_attachments()}
    assert set(attachments) == {"tillganglighet-2026-04.xlsx", "tillganglighet-2026-04.html"}
    book = openpyxl.load_workbook(io.BytesIO(attachments["tillganglighet-2026-04.xlsx"].get_content()))
    assert book.sheetnames[0] == "Sammanfattning"
    page = attachments["tillganglighet-2026-04.html"].get_content()
    assert '<html lang="sv"' in page and all(name in page for _, name in model.processes(agreements))


def test_send_waits_for_the_first_working_day(warehouse, smtp_server, tmp_path, capsys):  # noqa: F811
    sink, smarthost = smtp_server()
    managers = managers_file(tmp_path, smarthost)
    capsys.readouterr()
    # 1 May 2026 is a public holiday, 2-3 May a weekend: the first working day is Monday 4 May.
    assert send(warehouse, managers, "--only-first-working-day", "--as-of", "2026-05-01T07:00:00+02:00") == 0
    assert "not the month's first working day (2026-05-04): nothing sent" in capsys.readouterr().err
    assert sink.received == []
    assert send(warehouse, managers, "--only-first-working-day", "--as-of", "2026-05-04T07:00:00+02:00") == 0
    assert len(sink.received) == 1


def test_send_without_smtp_settings_or_with_a_relay_down_is_one_line(warehouse, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AVAILABILITY_MANAGERS", raising=False)
    capsys.readouterr()
    code = main(["report", "send", "--to", "a@example.se", "--agreements", AGREEMENTS, "--warehouse", str(warehouse)])
    assert code == 1
    assert capsys.readouterr().err.startswith("availability: no SMTP settings: use --managers FILE")
    with Warehouse.open(str(warehouse)):  # the warehouse still opens: nothing held it
        pass
    from tests.reporting.test_mail import free_port

    assert send(warehouse, managers_file(tmp_path, f"127.0.0.1:{free_port()}"), "--month", "2026-04") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot send through the SMTP relay 127.0.0.1:" in err[0]


# -- the demo ---------------------------------------------------------------------------------------------


def test_the_demo_writes_the_workbook_and_the_page_beside_the_json(tmp_path, capsys):
    out = tmp_path / "demo"
    capsys.readouterr()
    assert main(["demo", "--out", str(out), "--month", "2026-02", "--scale", "0.05"]) == 0
    err = capsys.readouterr().err
    for ext in ("json", "xlsx", "html"):
        path = out / f"report-2026-02.{ext}"
        assert path.is_file() and path.stat().st_size > 0 and str(path) in err
    printed = json.loads((out / "report-2026-02.json").read_text(encoding="utf-8"))
    shipped = load_agreements()
    assert_every_number_in_place(printed, shipped, "sv", read((out / "report-2026-02.xlsx").read_bytes()))


def test_options_before_send_are_kept(warehouse, smtp_server, tmp_path, capsys):  # noqa: F811
    sink, smarthost = smtp_server()
    managers = managers_file(tmp_path, smarthost)
    args = ["report", "--month", "2026-04", "--agreements", AGREEMENTS, "--warehouse", str(warehouse),
            "--lang", "en", "send", "--to", "chef@example.se", "--managers", str(managers)]  # fmt: skip
    assert main(args) == 0
    (mail,) = sink.received
    assert mail.message["Subject"] == "Availability report 2026-04"  # the month and language given before send
    names = {part.get_filename() for part in mail.message.iter_attachments()}
    assert names == {"tillganglighet-2026-04.xlsx", "tillganglighet-2026-04.html"}
    assert main([*args[:1], "--format", "csv", *args[1:]]) == 1
    assert "takes no --format or --out" in capsys.readouterr().err


def test_an_empty_month_is_not_mailed_unless_asked(warehouse, smtp_server, tmp_path, capsys):  # noqa: F811
    sink, smarthost = smtp_server()
    managers = managers_file(tmp_path, smarthost)
    capsys.readouterr()
    assert send(warehouse, managers, "--month", "2025-01") == 1
    assert "holds no events for 2025-01: nothing sent" in capsys.readouterr().err and sink.received == []
    assert send(warehouse, managers, "--month", "2025-01", "--allow-empty") == 0
    (mail,) = sink.received
    text = mail.message.get_body(preferencelist=("plain",)).get_content()
    assert "Inga händelser för 2025-01" in text
    lines = [line for line in text.splitlines() if line.startswith("- ")]  # one per process
    assert lines and not any("✓" in line or "✗" in line for line in lines)  # no case, no call: nothing judged


def test_a_recipient_must_be_an_address(warehouse, tmp_path, capsys):
    capsys.readouterr()
    assert send(warehouse, managers_file(tmp_path, "127.0.0.1:25"), "--to", "chef") == 1
    assert capsys.readouterr().err == "availability: --to: not an e-mail address: 'chef'\n"


def test_an_extension_that_names_no_format_is_an_error(warehouse, tmp_path, capsys):
    capsys.readouterr()
    assert report(warehouse, "--out", str(tmp_path / "r.pdf")) == 1
    assert "cannot tell the format from its extension; add --format" in capsys.readouterr().err
    assert not (tmp_path / "r.pdf").exists()
    assert report(warehouse, "--out", str(tmp_path / "r.pdf"), "--format", "html") == 0  # said explicitly
