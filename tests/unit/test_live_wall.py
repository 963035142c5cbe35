"""dashboards/live_wall.py: the wall's numbers from hand-written /metrics texts, each expected value
computed by hand from the formulas of dashboards/grafana/wall.py (the comment says how)."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest

from availability.cli import main
from availability.cli.demo_live import recent_working_day
from availability.cli.wall import duration, metrics_url, pct
from dashboards import live_wall
from dashboards.live_wall import History, Sample, build, parse
from schemas.agreements import load_agreements
from schemas.errors import InputError
from tests.conftest import free_port

# Two workers of one deployment. Queue a is open on both; b is closed (its ready agents must not
# show); c is open with no agents' series at all and only outcomes outside the base.
WORKER_1 = """\
# HELP availability_queue_open 1 while the queue is open
# TYPE availability_queue_open gauge
availability_queue_open{queue="a"} 1.0
availability_queue_open{queue="b"} 0.0
availability_queue_open{queue="c"} 1.0
# TYPE availability_queue_waiting gauge
availability_queue_waiting{queue="a"} 2.0
availability_queue_waiting{queue="b"} 0.0
availability_queue_waiting{queue="c"} 1.0
# TYPE availability_queue_oldest_wait_seconds gauge
availability_queue_oldest_wait_seconds{queue="a"} 45.5
availability_queue_oldest_wait_seconds{queue="c"} 10.0
# TYPE availability_queue_agents gauge
availability_queue_agents{queue="a",state="ready"} 1.0
availability_queue_agents{queue="a",state="busy"} 3.0
availability_queue_agents{queue="b",state="ready"} 2.0
# TYPE availability_queue_today_contacts gauge
availability_queue_today_contacts{outcome="answered_in_sl",queue="a"} 6.0
availability_queue_today_contacts{outcome="answered_late",queue="a"} 1.0
availability_queue_today_contacts{outcome="abandoned",queue="a"} 1.0
availability_queue_today_contacts{outcome="abandoned_short",queue="a"} 5.0
availability_queue_today_contacts{outcome="callback",queue="a"} 2.0
availability_queue_today_contacts{outcome="flowed_out",queue="a"} 0.0
availability_queue_today_contacts{outcome="out_of_hours",queue="a"} 3.0
availability_queue_today_contacts{outcome="abandoned",queue="b"} 2.0
availability_queue_today_contacts{outcome="abandoned_short",queue="c"} 4.0
availability_queue_today_contacts{outcome="out_of_hours",queue="c"} 2.0
# TYPE availability_queue_service_level_target gauge
availability_queue_service_level_target{queue="a"} 0.8
availability_queue_service_level_target{queue="b"} 0.75
# TYPE availability_queue_answer_rate_target gauge
availability_queue_answer_rate_target{queue="a"} 0.9
# TYPE availability_queue_service_level_seconds gauge
availability_queue_service_level_seconds{queue="a"} 60.0
# TYPE availability_mailbox_open gauge
availability_mailbox_open{mailbox="m"} 1.0
# TYPE availability_mailbox_open_cases gauge
availability_mailbox_open_cases{mailbox="m",priority="true"} 1.0
availability_mailbox_open_cases{mailbox="m",priority="false"} 3.0
# TYPE availability_mailbox_oldest_open_business_seconds gauge
availability_mailbox_oldest_open_business_seconds{mailbox="m"} 3600.0
# TYPE availability_mailbox_breached_cases gauge
availability_mailbox_breached_cases{mailbox="m",priority="true"} 1.0
availability_mailbox_breached_cases{mailbox="m",priority="false"} 0.0
# TYPE availability_mailbox_breaching_within_hour gauge
availability_mailbox_breaching_within_hour{mailbox="m",priority="false"} 2.0
"""

WORKER_2 = """\
availability_queue_open{queue="a"} 1.0
availability_queue_waiting{queue="a"} 3.0
availability_queue_oldest_wait_seconds{queue="a"} 80.0
availability_queue_agents{queue="a",state="ready"} 2.0
availability_queue_today_contacts{outcome="answered_in_sl",queue="a"} 2.0
availability_queue_today_contacts{outcome="flowed_out",queue="a"} 1.0
availability_queue_today_contacts{outcome="answered_late",queue="b"} 1.0
availability_queue_service_level_target{queue="a"} 0.8
availability_mailbox_open{mailbox="m"} 1.0
availability_mailbox_open_cases{mailbox="m",priority="false"} 2.0
availability_mailbox_oldest_open_business_seconds{mailbox="m"} 7200.0
availability_mailbox_breached_cases{mailbox="m",priority="false"} 1.0
availability_mailbox_breaching_within_hour{mailbox="m",priority="true"} 1.0
"""


def two_workers() -> list[Sample]:
    return parse(WORKER_1, instance="w1") + parse(WORKER_2, instance="w2")


def rows() -> tuple[dict[str, live_wall.QueueRow], live_wall.MailboxRow]:
    wall = build(two_workers())
    return {r.queue: r for r in wall.queues}, wall.mailboxes[0]


def test_gauges_of_two_workers_are_summed_or_maxed_as_the_aggregation_table_says() -> None:
    q, m = rows()
    assert q["a"].waiting == 5  # sum: 2 + 3
    assert q["a"].oldest_wait == 80  # max: the longest wait of either worker, not 45.5 + 80
    assert q["a"].agents_ready == 3  # sum: 1 + 2 ready (the 3 busy are not ready)
    assert q["a"].open == 1 and q["a"].sl_target == 0.8  # max: both say 1 and 0.8, not 2 and 1.6
    assert q["a"].ar_target == 0.9 and q["a"].sl_seconds == 60
    assert (m.open_cases, m.priority_cases) == (6, 1)  # 1 + 3 + 2 in all, 1 of them priority
    assert m.oldest_open == 7200  # max
    assert (m.breached, m.breaching_within_hour) == (2, 3)  # 1 + 0 + 1 and 2 + 1, both priorities
    assert m.is_open


def test_service_level_and_answer_rate_today_leave_out_short_abandons_callbacks_and_closed_hours() -> None:
    q, _ = rows()
    # a: in SL 6 + 2 = 8; base = 8 + late 1 + abandoned 1 + flowed out 1 = 11 (5 short abandons,
    # 2 callbacks and 3 out of hours are outside it).
    assert q["a"].sl_today == pytest.approx(8 / 11)
    assert q["a"].ar_today == pytest.approx(9 / 11)  # answered 8 + 1
    # b: no answered_in_sl series at all, base abandoned 2 + late 1 = 3: 0, not "no value".
    assert q["b"].sl_today == 0.0
    assert q["b"].ar_today == pytest.approx(1 / 3)


def test_a_zero_base_has_no_value_not_zero() -> None:
    q, _ = rows()
    # c: 4 short abandons and 2 out of hours only: base 0, so "–" (and never compared with a target).
    assert q["c"].sl_today is None and q["c"].ar_today is None
    # No history: no 30-minute figure for anyone.
    assert all(r.sl_30m is None and r.ar_30m is None for r in q.values())


def test_agents_ready_show_only_while_the_queue_is_open() -> None:
    q, _ = rows()
    assert q["b"].agents_ready is None  # 2 ready, but closed: the wall shows "–"
    assert q["c"].agents_ready == 0  # open with no agents' series: 0 (`or 0 * OPEN`), not "–"
    assert q["c"].oldest_wait == 10 and q["b"].oldest_wait is None  # b has no series of it


def test_queues_and_mailboxes_come_in_the_order_the_worker_writes_them() -> None:
    wall = build(two_workers())
    assert [r.queue for r in wall.queues] == ["a", "b", "c"]
    assert [r.mailbox for r in wall.mailboxes] == ["m"]


def test_the_outcome_sets_are_kpi_promqls() -> None:
    # spec/metrics.md: base = offered − short abandons − callbacks (out_of_hours is not offered)
    assert sorted(live_wall.BASE) == ["abandoned", "answered_in_sl", "answered_late", "flowed_out"]
    assert sorted(live_wall.ANSWERED) == ["answered_in_sl", "answered_late"]
    assert sorted(live_wall.IN_SL) == ["answered_in_sl"]


def counters(**values: float) -> str:
    """availability_queue_contacts_total lines: `a__answered_in_sl__w1=3` is queue a, that
    outcome, worker w1."""
    lines = ["# TYPE availability_queue_contacts counter"]
    for name, value in values.items():
        queue, outcome, worker = name.split("__")
        lines.append(f'availability_queue_contacts_total{{queue="{queue}",outcome="{outcome}",w="{worker}"}} {value}')
    return "\n".join(lines) + "\n"


# Scrapes every 10 minutes; the window at t=40 min runs from the scrape at 10 min.
SCRAPES = [
    (0, dict(a__answered_in_sl__w1=10, a__answered_late__w1=0, a__abandoned_short__w1=0, a__abandoned__w2=1, a__answered_in_sl__w2=4, c__abandoned__w1=0)),
    (600, dict(a__answered_in_sl__w1=12, a__answered_late__w1=0, a__abandoned_short__w1=0, a__abandoned__w2=1, a__answered_in_sl__w2=4, c__abandoned__w1=0)),
    (1200, dict(a__answered_in_sl__w1=15, a__answered_late__w1=1, a__abandoned_short__w1=5, a__abandoned__w2=1, a__answered_in_sl__w2=4, c__abandoned__w1=0)),
    # w1 restarted: its counters start again from 0
    (1800, dict(a__answered_in_sl__w1=3, a__answered_late__w1=1, a__abandoned_short__w1=5, a__abandoned__w2=1, a__answered_in_sl__w2=6, c__abandoned__w1=0)),
    (2400, dict(a__answered_in_sl__w1=5, a__answered_late__w1=2, a__abandoned_short__w1=10, a__abandoned__w2=1, a__answered_in_sl__w2=6, c__abandoned__w1=0, d__answered_in_sl__w1=7)),
]  # fmt: skip


def test_the_30_minutes_count_steps_between_scrapes_and_a_restart_from_zero() -> None:
    history = History()
    for at, values in SCRAPES:
        samples = parse(counters(**values))
        counts = history.add(at, samples)
    wall = build(samples, counts)
    q = {r.queue: r for r in wall.queues}
    assert wall.window_seconds == 1800  # from the scrape at 600 s, the latest at or before 2400 − 1800
    # a, in SL: w1 12 → 15 (+3) → restart at 3 (+3, counted from 0) → 5 (+2) = 8; w2 4 → 6 = 2. The
    # 2 of w1 before 600 s are outside the window.
    # Base: in SL 10 + late (0 → 1 → 1 → 2) 2 + abandoned (w2, flat) 0 = 12; short abandons not in it.
    assert q["a"].sl_30m == pytest.approx(10 / 12)
    assert q["a"].ar_30m == 1.0  # answered 10 + 2 of 12
    assert q["c"].sl_30m is None  # nothing ended: base 0
    assert q["d"].sl_30m is None  # a series in one scrape only has no increase, as in Prometheus


def test_a_shorter_history_covers_only_the_time_since_the_first_scrape() -> None:
    history = History()
    history.add(0, parse(counters(**SCRAPES[0][1])))
    samples = parse(counters(**SCRAPES[1][1]))
    wall = build(samples, history.add(600, samples))
    # 10 minutes: a in SL w1 10 → 12, nothing else moved: 2 / 2.
    assert wall.window_seconds == 600
    assert {r.queue: r.sl_30m for r in wall.queues} == {"a": 1.0, "c": None}


def test_a_clock_stepped_back_starts_the_history_afresh_instead_of_failing() -> None:
    history = History()
    history.add(0, parse(counters(**SCRAPES[0][1])))
    history.add(600, parse(counters(**SCRAPES[1][1])))
    # An NTP step of 5 minutes back: the scrape at "300" is the history's first again, so its
    # window is empty (no figure), and the next, 600 s later, covers those 600 s alone: w1's
    # a/in SL 12 → 15 and late 0 → 1, w2 flat: in SL 3 of base 4.
    assert history.add(300, parse(counters(**SCRAPES[1][1]))) == live_wall.WindowCounts(0.0, {})
    counts = history.add(900, parse(counters(**SCRAPES[2][1])))
    assert counts.seconds == 600
    assert {r.queue: r.sl_30m for r in build(parse(counters(**SCRAPES[2][1])), counts).queues}["a"] == 3 / 4


def test_a_gap_in_the_scrapes_does_not_stretch_the_30_minutes() -> None:
    history = History()  # slack 60 s: the scrape before the window may lie up to 60 s before it
    history.add(0, parse(counters(a__answered_in_sl__w1=1)))
    history.add(60, parse(counters(a__answered_in_sl__w1=2)))
    # The worker unreachable (or the laptop asleep) for two hours: the window 5400..7200 has only
    # this scrape, and the one before it (60) lies 5340 s before its start, so the window starts
    # here: 0 s, no figure, not the two hours 60..7200 (7140 s) as "30 min".
    counts = history.add(7200, parse(counters(a__answered_in_sl__w1=9)))
    assert counts == live_wall.WindowCounts(0.0, {})
    # Window 5450..7250: from 7200, its first scrape inside: 50 s, 9 → 10.
    counts = history.add(7250, parse(counters(a__answered_in_sl__w1=10)))
    assert counts.seconds == 50 and list(counts.increases.values()) == [1.0]
    # Window 7200..9000: the scrape at 7200 is on its start: 30 minutes whole, 9 → 10 → 12 = 3.
    counts = history.add(9000, parse(counters(a__answered_in_sl__w1=12)))
    assert counts.seconds == 1800 and list(counts.increases.values()) == [3.0]

    regular = History()
    for at in (0, 600, 1241):
        counts = regular.add(at, [])
    assert counts.seconds == 1241  # the window (−559..1241) reaches before the first scrape
    assert regular.add(1859, []).seconds == 1859  # window 59..1859: 0 lies 59 s before it, in the slack
    assert regular.add(1861, []).seconds == 1261  # window 61..1861: 0 lies 61 s before it; from 600


def test_the_screen_says_when_the_30_minutes_cover_less() -> None:
    from datetime import datetime

    from rich.console import Console

    from availability.cli.wall import Frame, render

    def screen(seconds: float) -> str:
        console = Console(width=160, record=True, file=io.StringIO())
        wall = build(parse(WORKER_1), live_wall.WindowCounts(seconds))
        console.print(render(Frame(datetime(2026, 5, 12, 10, 0), wall), "sv"))
        return console.export_text()

    assert "30 min-siffrorna täcker bara 20 min" in screen(20 * 60 + 30)  # after a gap, or a young wall
    assert "täcker bara" not in screen(1800) and "täcker bara" not in screen(1850)  # 30 min (+ slack)


def test_targets_are_compared_with_grafanas_rounded_thresholds() -> None:
    from availability.cli.wall import against

    # Grafana's steps for a target 0.8: red below 0.8, amber from 0.8, green from
    # round(0.8 + 0.05, 4) = 0.85 (unrounded it is 0.8500000000000001): exactly 85 % is green.
    assert str(against(0.85, 0.8).style) == "green"
    assert str(against(0.8499, 0.8).style) == "yellow" and str(against(0.8, 0.8).style) == "yellow"
    assert str(against(0.7999, 0.8).style) == "bold red"
    # 0.1 + 0.2 is 0.30000000000000004: a target stored so is compared as Grafana's 0.3.
    assert str(against(0.3, 0.1 + 0.2).style) == "yellow"


def test_a_narrow_terminal_never_cuts_a_queues_name() -> None:
    from datetime import datetime

    from rich.console import Console

    from availability.cli.wall import Frame, render

    name = "kundtjanst-foretag-overflow"  # 27 characters, wider than rich would leave the column
    text = WORKER_1.replace('queue="a"', f'queue="{name}"')
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(render(Frame(datetime(2026, 5, 12, 10, 0), build(parse(text))), "sv"))
    assert f"│ {name} " in console.export_text()


def test_parse_keeps_labels_adds_the_extra_ones_and_refuses_what_is_not_the_format() -> None:
    (sample,) = parse('availability_queue_waiting{queue="a"} 2\n', instance="w1")
    assert sample == Sample("availability_queue_waiting", {"queue": "a", "instance": "w1"}, 2.0)
    with pytest.raises(ValueError):
        parse("<html>not metrics</html>\n")


def test_the_terminal_formats() -> None:
    assert duration(None) == "–" and duration(59.9) == "0:59"  # whole seconds elapsed, as a clock
    assert duration(3725) == "1:02:05" and duration(125) == "2:05"
    assert pct(8 / 11) == "73 %" and pct(None) == "–"
    assert metrics_url("http://127.0.0.1:6066") == "http://127.0.0.1:6066/metrics"
    assert metrics_url("https://w.example/x/metrics") == "https://w.example/x/metrics"
    for bad in ("127.0.0.1:6066", "ftp://x/metrics", "http://:99/metrics", "http://x:99999/metrics"):
        with pytest.raises(InputError, match="not an http"):
            metrics_url(bad)


# -- the commands' mistakes, each one line before any work -------------------------------------


def test_recent_working_day_skips_weekends_and_holidays() -> None:
    agreements = load_agreements(None)  # the shipped ones: phones closed on weekends and holidays
    assert recent_working_day(agreements, date(2026, 5, 18)) == date(2026, 5, 15)  # Monday -> Friday
    # Friday 15 May 2026: the day before is Kristi himmelfärdsdag (14 May), so Wednesday 13.
    assert recent_working_day(agreements, date(2026, 5, 15)) == date(2026, 5, 13)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--day", "2026-05-12"], "--day: only with demo --live"),
        (["demo", "--speed", "5", "--web-port", "1"], "--speed, --web-port: only with demo --live"),
        (["demo", "--live", "--from", "12:00", "--until", "08:00"], "--until 08:00 must be after --from 12:00"),
        (["demo", "--live"], "demo --live needs Kafka at 127.0.0.1:{port}: run deploy/dev/kafka.sh start"),
        (
            ["wall", "--metrics-url", "localhost:6066"],
            "--metrics-url 'localhost:6066' is not an http(s) URL (e.g. http://127.0.0.1:6066/metrics)",
        ),
    ],
)
def test_a_mistake_is_one_line_and_exit_1(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there: the demo must say so before it starts anything
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == f"availability: {message.format(port=port)}\n"
    assert not (tmp_path / "availability-demo").exists()  # nothing was made
