"""`availability staffing` end to end on the embedded engine: four simulated weeks of the shipped
agreements processed into a warehouse, then the plan of the week after them in each format, a
backtest of their last week, and the user's mistakes as one line each."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import openpyxl
import pytest

from availability.cli import main
from dashboards.staffing.formats import BACKTEST_COLUMNS, PLAN_COLUMNS
from ingest.simulator import simulate, write_jsonl
from schemas.agreements import load_agreements
from stream_jobs.warehouse import Warehouse

AGREEMENTS = load_agreements()
START, DAYS = date(2026, 5, 4), 28  # Monday 4 May to Sunday 31 May 2026 (W19-W22)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("staffing")
    events = root / "may.jsonl"
    with events.open("wb") as out:
        write_jsonl(simulate(AGREEMENTS, START, DAYS, seed=7, scale=1.0), out)
    wh = root / "wh"
    assert main(["process", str(events), "--warehouse", str(wh)]) == 0
    return str(wh)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["staffing", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_plan_as_csv(warehouse: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "--week", "2026-W23", "--history-weeks", "4", "--warehouse", warehouse, "--format", "csv"
    )
    assert code == 0, err
    assert out.startswith("\ufeff")  # Excel reads it as UTF-8
    rows = list(csv.DictReader(io.StringIO(out.lstrip("\ufeff"))))
    assert tuple(rows[0]) == PLAN_COLUMNS
    assert {r["queue"] for r in rows} == set(AGREEMENTS.queues)
    assert {r["week"] for r in rows} == {"2026-W23"}
    # 1-7 June 2026: Mon-Fri open (telefontid), 6 June (National Day) a Saturday: no rows then.
    assert {r["date"] for r in rows} == {f"2026-06-0{d}" for d in range(1, 6)}
    assert all(r["start"].endswith("+02:00") and r["start"][11:16] == r["time"] for r in rows)
    # Monday 1 June is June's first working day: a month start, and kundreskontra's peak shows.
    kund = [r for r in rows if r["queue"] == "kundreskontra"]
    assert {r["month_start"] for r in kund} == {"1"}  # 1-5 June are June's first five working days
    assert all(int(r["agents"]) >= 1 for r in kund)
    monday = sum(float(r["forecast_calls"]) for r in kund if r["date"] == "2026-06-01")
    assert 40 < monday < 200  # about 65 a working day × the month start, × Monday's level
    for r in rows:
        assert int(r["agents"]) >= 0 and float(r["handle_seconds"]) > 0
        assert r["service_level"] == "" or 0 <= float(r["service_level"]) <= 1


def test_the_plan_as_a_table_and_a_workbook(warehouse: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--week", "2026-W23", "--history-weeks", "4", "--warehouse", warehouse)
    assert code == 0, err
    assert out.startswith("Bemanningsbehov 2026-W23 (1 jun 2026 – 7 jun 2026)")
    assert "mån 1 jun · månadsstart" in out and "lör 6 jun · ingen kö öppen" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    book = tmp_path / "plan.xlsx"
    code, _, err = run(
        capsys,
        "--week",
        "2026-W23",
        "--history-weeks",
        "4",
        "--warehouse",
        warehouse,
        "--output",
        str(book),
        "--lang",
        "en",
    )
    assert code == 0 and f"to {book}" in err
    wb = openpyxl.load_workbook(book)
    assert wb.sheetnames == ["Summary", "Agents", "Calls (forecast)", "Rows"]
    assert [c.value for c in wb["Rows"][1]] == list(PLAN_COLUMNS)
    assert [c.value for c in wb["Agents"][1]][3:-1] == list(AGREEMENTS.queues)


def test_the_backtest(warehouse: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--backtest", "--from", "2026-05-25", "--weeks", "1", "--history-weeks", "3", "--warehouse", warehouse)
    code, out, err = run(capsys, *args, "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out.lstrip("\ufeff"))))
    assert tuple(rows[0]) == BACKTEST_COLUMNS
    assert [(r["queue"], r["week"]) for r in rows if r["week"] == "all"] == [
        *((q, "all") for q in AGREEMENTS.queues),
        ("all", "all"),
    ]
    total = rows[-1]
    assert float(total["actual_calls"]) > 500  # a week of the centre, about 900 calls
    assert 0 < float(total["wape"]) < 2 and 0 < float(total["mape_days"]) < 1
    assert abs(float(total["forecast_calls"]) / float(total["actual_calls"]) - 1) < 0.3
    # Without --from: the last whole week in the warehouse, the same one here.
    code, out, err = run(
        capsys, "--backtest", "--weeks", "1", "--history-weeks", "3", "--warehouse", warehouse, "--format", "csv"
    )
    assert code == 0 and "2026-W22" in err
    assert list(csv.DictReader(io.StringIO(out.lstrip("\ufeff"))))[-1] == total
    book = tmp_path / "bt.xlsx"
    assert run(capsys, *args, "--output", str(book))[0] == 0
    assert openpyxl.load_workbook(book).sheetnames == ["Översikt", "Veckor"]
    code, out, _ = run(capsys, *args, "--lang", "en")
    assert code == 0 and out.startswith("Backtest of the forecast 2026-W22 (1 week)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("--week", "2026-W10"),
            "the warehouse holds no calls in the 8 weeks before 2026-W10 (2026-01-05 to 2026-03-01)",
        ),
        (("--output", "plan.pdf"), "--output plan.pdf: cannot tell the format from its extension"),
        (("--backtest", "--week", "2026-W23"), "--week is the week to plan"),
        (("--weeks", "3"), "--from and --weeks are for --backtest"),
        (("--backtest", "--from", "2026-05-04", "--weeks", "2"), "no calls in the 8 weeks before 2026-W19"),
        (("--backtest", "--from", "2026-06-01"), "no calls in 2026-W23 to compare"),
    ],
)
def test_mistakes_are_one_line(
    warehouse: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, out, err = run(capsys, *argv, "--warehouse", warehouse)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--week", "2026-W54"), "invalid week '2026-W54' (2026 has ISO weeks 1 to 53)"),
        (("--week", "2027-W53"), "invalid week '2027-W53' (2027 has ISO weeks 1 to 52)"),
        (("--week", "23"), "invalid week '23' (expected YYYY-Www, e.g. 2026-W23)"),
        (("--format", "pdf"), "argument --format: invalid choice: 'pdf'"),
        (
            ("--backtest", "--from", "2026-05-06"),
            "2026-05-06 is a Wednesday: give the Monday a week starts on (2026-05-04)",
        ),
        (("--weeks", "0", "--backtest"), "argument --weeks: must be a positive number"),
    ],
)
def test_wrong_options_are_argparse_errors(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["staffing", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err.splitlines()[-1] and "Traceback" not in err


def test_an_empty_or_missing_warehouse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--week", "2026-W23", "--warehouse", str(tmp_path / "none"))
    assert code == 1 and err.count("\n") == 1 and "holds no warehouse" in err
    Warehouse.open(str(tmp_path / "empty")).close()
    code, _, err = run(capsys, "--week", "2026-W23", "--warehouse", str(tmp_path / "empty"))
    assert code == 1 and err.count("\n") == 1 and "holds no calls in the 8 weeks before 2026-W23" in err
    code, _, err = run(capsys, "--backtest", "--warehouse", str(tmp_path / "empty"))
    assert code == 1 and err.count("\n") == 1 and "holds no calls to backtest with" in err
