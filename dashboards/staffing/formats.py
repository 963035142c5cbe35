"""The staffing plan and its backtest as people open them: a table on the terminal (80 columns
for the nine queues), CSV rows for a spreadsheet or Power BI, an Excel workbook for the planner.

The table and the workbook are in Swedish unless `lang` is "en"; the CSV's column names are the
same in both. Every number is one of the plan's (dashboards/staffing/plan.py): the formats only
lay them out. In the workbook each cell is a real number (a share is a fraction shown as a
percentage, a time of day an Excel time), so it can be summed, filtered and charted.
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections.abc import Sequence
from datetime import date
from typing import IO, Any, BinaryIO, TextIO

import xlsxwriter  # type: ignore[import-untyped]  # XlsxWriter ships no type information

from dashboards.reporting.model import Lang
from dashboards.staffing.plan import Backtest, Parameters, Plan, QueuePlan, Score, iso_week
from stream_jobs.core.arrivals import SLOTS_PER_DAY, slot_label

WIDTH = 80  # the terminal's columns the table's prose wraps at

WORDS: dict[str, dict[Lang, str]] = {
    "title": {"sv": "Bemanningsbehov", "en": "Staffing"},
    "subtitle": {
        "sv": "Agenter som behövs per kvart för varje kös mål (Erlang A), lokal tid",
        "en": "Agents needed per 15 minutes to meet each queue's targets (Erlang A), local time",
    },
    "history": {"sv": "Prognos från", "en": "Forecast from"},
    "days_with_data": {"sv": "dagar med data", "en": "days with data"},
    "column": {"sv": "kol", "en": "col"},
    "queue": {"sv": "kö", "en": "queue"},
    "name": {"sv": "namn", "en": "name"},
    "calls": {"sv": "samtal", "en": "calls"},
    "agent_hours": {"sv": "agenttim", "en": "agent-h"},
    "peak": {"sv": "topp", "en": "peak"},
    "talk": {"sv": "samtalstid", "en": "talk"},
    "wrap_up": {"sv": "efterarbete", "en": "wrap-up"},
    "handle": {"sv": "hantering", "en": "handle"},
    "patience": {"sv": "tålamod", "en": "patience"},
    "base_share": {"sv": "andel i basen", "en": "share in base"},
    "month_start": {"sv": "månadsstart", "en": "month start"},
    "target": {"sv": "mål", "en": "target"},
    "answered": {"sv": "besvarade", "en": "answered"},
    "time": {"sv": "tid", "en": "time"},
    "legend_plan": {
        "sv": "hante = samtalstid + efterarbete, tålam = tålamod (m:ss), ×m = månadsstartens multiplikator, mål = "
        "servicenivå ≤ T s och svarsfrekvens; agenttim = agenttimmar; – = kön stängd",
        "en": "handle = talk + wrap-up, patie = patience (m:ss), ×m = the month start's multiplier, target = "
        "service level ≤ T s and answer rate; agent-h = agent-hours; – = the queue closed",
    },
    "total": {"sv": "summa", "en": "total"},
    "closed": {"sv": "stängt", "en": "closed"},
    "reduced": {"sv": "avvikande öppettider", "en": "reduced hours"},
    "no_queue_open": {"sv": "ingen kö öppen", "en": "no queue open"},
    "notes": {"sv": "Observera", "en": "Notice"},
    "summary": {"sv": "Översikt", "en": "Summary"},
    "agents": {"sv": "Agenter", "en": "Agents"},
    "forecast_calls": {"sv": "Samtal (prognos)", "en": "Calls (forecast)"},
    "rows": {"sv": "Rader", "en": "Rows"},
    "weeks": {"sv": "Veckor", "en": "Weeks"},
    "date": {"sv": "datum", "en": "date"},
    "weekday": {"sv": "veckodag", "en": "weekday"},
    "service_level": {"sv": "servicenivå", "en": "service level"},
    "answer_rate": {"sv": "svarsfrekvens", "en": "answer rate"},
    "source": {"sv": "källa", "en": "source"},
    "all": {"sv": "alla köer", "en": "all queues"},
    "backtest": {"sv": "Utvärdering av prognosen", "en": "Backtest of the forecast"},
    "backtest_sub": {
        "sv": "Varje vecka prognostiserad från {n} före den och jämförd med utfallet (öppna kvartar)",
        "en": "Each week forecast from the {n} before it and compared with what came (open slots)",
    },
    "week": {"sv": "vecka", "en": "week"},
    "weeks_word": {"sv": "veckor", "en": "weeks"},
    "actual": {"sv": "utfall", "en": "actual"},
    "forecast": {"sv": "prognos", "en": "forecast"},
    "wape": {"sv": "WAPE", "en": "WAPE"},
    "mape_slots": {"sv": "MAPEkv", "en": "MAPE15"},
    "floor": {"sv": "golv", "en": "floor"},
    "mape_days": {"sv": "MAPE d", "en": "MAPE d"},
    "naive": {"sv": "naiv", "en": "naive"},
    "bias": {"sv": "Δagent", "en": "Δagent"},
    "mae": {"sv": "|Δ|", "en": "|Δ|"},
    "under": {"sv": "för få", "en": "under"},
    "legend_backtest": {
        "sv": "WAPE = Σ|F−A|/ΣA över öppna kvartar; golv = den WAPE en exakt rätt prognos väntas få (Poisson-brus); "
        "naiv = WAPE för samma kvart veckan innan; MAPEkv = medel av |F−A|/A över kvartar med A ≥ 1; MAPE d = "
        "samma per dag; Δagent = medel av agenter enligt prognos − agenter som utfallet krävde, per kvart; för få "
        "= andel kvartar med för få",
        "en": "WAPE = Σ|F−A|/ΣA over open slots; floor = the WAPE expected of an exactly right forecast (Poisson "
        "noise); naive = WAPE of the same slot a week before; MAPE15 = mean |F−A|/A over slots with A ≥ 1; MAPE d = "
        "the same per day; Δagent = mean agents forecast − agents the actual calls needed, per slot; under = share "
        "of slots with too few",
    },
    "missing": {"sv": "dagar utan data, inte jämförda", "en": "days without data, not compared"},
}
WEEKDAYS: dict[Lang, tuple[str, ...]] = {
    "sv": ("mån", "tis", "ons", "tor", "fre", "lör", "sön"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
MONTHS: dict[Lang, tuple[str, ...]] = {
    "sv": ("jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec"),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}
SOURCES: dict[str, dict[Lang, str]] = {
    "queue": {"sv": "kön", "en": "the queue"},
    "all queues": {"sv": "alla köer", "en": "all queues"},
    "assumed": {"sv": "antaget", "en": "assumed"},
    "given": {"sv": "angivet", "en": "given"},
    "none abandoned": {"sv": "ingen lade på (Erlang C)", "en": "none abandoned (Erlang C)"},
}

PLAN_COLUMNS = (
    "week", "queue", "date", "time", "start", "open_seconds", "month_start", "forecast_calls", "agents",
    "service_level", "answer_rate", "handle_seconds", "patience_seconds",
)  # fmt: skip
BACKTEST_COLUMNS = (
    "queue", "week", "open_slots", "actual_calls", "forecast_calls", "wape", "floor_wape", "naive_wape", "mape_slots",
    "mape_days", "agent_hours_forecast", "agent_hours_needed", "agents_bias", "agents_mae", "under_share",
)  # fmt: skip


def word(key: str, lang: Lang) -> str:
    return WORDS[key][lang]


def day_label(day: date, lang: Lang) -> str:
    return f"{WEEKDAYS[lang][day.weekday()]} {day.day} {MONTHS[lang][day.month - 1]}"


def span_label(first: date, last: date, lang: Lang) -> str:
    return (
        f"{first.day} {MONTHS[lang][first.month - 1]} {first.year}"
        f" – {last.day} {MONTHS[lang][last.month - 1]} {last.year}"
    )


def codes(ids: Sequence[str]) -> dict[str, str]:
    """A short column heading per queue id: its shortest prefix (3 letters or more) that no other
    id starts with, at most 6 letters."""
    out = {}
    for q in ids:
        common = max((_common(q, other) for other in ids if other != q), default=0)
        out[q] = q[: min(max(3, common + 1), 6)]
    return out


def _common(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def duration(seconds: float) -> str:
    """m:ss; ∞ for no patience limit."""
    if math.isinf(seconds):
        return "∞"
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def target_label(qp: QueuePlan) -> str:
    q = qp.queue
    return f"{q.service_level_target * 100:.0f}%≤{q.service_level_seconds:g}s {q.answer_rate_target * 100:.0f}%"


# -- the plan on a terminal -----------------------------------------------------------------------


def plan_table(plan: Plan, lang: Lang, out: TextIO) -> None:
    def w(key: str) -> str:
        return word(key, lang)

    ids = [qp.queue.id for qp in plan.queues]
    code = codes(ids)
    first, last = plan.days[0], plan.days[-1]
    print(f"{w('title')} {plan.week} ({span_label(first, last, lang)})", file=out)
    print(w("subtitle"), file=out)
    print(
        f"{w('history')} {span_label(plan.history_first, plan.history_last, lang)} "
        f"({plan.history_days} {w('days_with_data')})",
        file=out,
    )
    for note in plan.notes:
        print(f"{w('notes')}: {note}", file=out)
    print(file=out)
    width = max(len(q) for q in ids)
    head = (
        f"{w('column'):<6} {w('queue'):<{width}} {w('calls'):>6} {w('agent_hours'):>8} {w('peak'):>4} "
        f"{w('handle')[:5]:>5} {w('patience')[:5]:>5} {'×m':>5}  {w('target')}"
    )
    print(head, file=out)
    for qp in plan.queues:
        p = qp.parameters
        print(
            f"{code[qp.queue.id]:<6} {qp.queue.id:<{width}} {qp.calls:>6.0f} {qp.agent_hours:>8.1f} {qp.peak:>4} "
            f"{duration(p.handle_seconds):>5} {duration(p.patience_seconds):>5} {qp.model.month_start:>5.2f}  "
            f"{target_label(qp)}",
            file=out,
        )
    print(
        f"{'':<6} {w('total'):<{width}} {sum(qp.calls for qp in plan.queues):>6.0f} "
        f"{sum(qp.agent_hours for qp in plan.queues):>8.1f}",
        file=out,
    )
    print(textwrap.fill(w("legend_plan"), WIDTH), file=out)
    cell = max(5, *(len(c) + 2 for c in code.values()))
    for day in plan.days:
        print(file=out)
        by_queue = {qp.queue.id: {s.slot: s for s in qp.slots if s.day == day} for qp in plan.queues}
        open_slots = sorted({s for slots in by_queue.values() for s, x in slots.items() if x.open_seconds > 0})
        usual = sorted({s for slots in by_queue.values() for s in slots})
        flags = []
        if any(x.month_start for slots in by_queue.values() for x in slots.values()):
            flags.append(w("month_start"))
        if not open_slots:
            flags.append(w("closed") if usual else w("no_queue_open"))
        elif set(open_slots) != set(usual):
            flags.append(w("reduced"))
        print(" · ".join([day_label(day, lang), *flags]), file=out)
        if not open_slots:
            continue
        print(f"{w('time'):<8}" + "".join(f"{code[q]:>{cell}}" for q in ids) + f"{w('total'):>7}", file=out)
        for s in open_slots:
            cells, total = [], 0
            for q in ids:
                x = by_queue[q].get(s)
                if x is None or x.open_seconds == 0:
                    cells.append(f"{'–':>{cell}}")
                else:
                    cells.append(f"{x.agents:>{cell}}")
                    total += x.agents
            print(f"{slot_label(s):<8}" + "".join(cells) + f"{total:>7}", file=out)
        calls = [sum(x.calls for x in by_queue[q].values()) for q in ids]
        hours = [sum(x.agent_hours for x in by_queue[q].values()) for q in ids]
        print(f"{w('calls'):<8}" + "".join(f"{c:>{cell}.0f}" for c in calls) + f"{sum(calls):>7.0f}", file=out)
        print(f"{w('agent_hours'):<8}" + "".join(f"{h:>{cell}.1f}" for h in hours) + f"{sum(hours):>7.1f}", file=out)


# -- the plan as CSV and as a workbook ---------------------------------------------------------


def plan_rows(plan: Plan) -> list[list[Any]]:
    """The tidy rows: one per queue and slot the queue usually opens or opens that day."""
    rows = []
    for qp in plan.queues:
        p = qp.parameters
        for s in qp.slots:
            rows.append(
                [
                    plan.week,
                    qp.queue.id,
                    s.day.isoformat(),
                    slot_label(s.slot),
                    s.start.isoformat(),
                    round(s.open_seconds),
                    int(s.month_start),
                    round(s.calls, 4),
                    s.agents,
                    _rounded(s.service_level),
                    _rounded(s.answer_rate),
                    round(p.handle_seconds, 1),
                    None if math.isinf(p.patience_seconds) else round(p.patience_seconds, 1),
                ]
            )
    return rows


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def plan_csv(plan: Plan, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(PLAN_COLUMNS)
    writer.writerows([["" if v is None else v for v in row] for row in plan_rows(plan)])


class _Book:
    """An xlsxwriter workbook in memory with the formats the sheets share."""

    def __init__(self, out: BinaryIO | IO[bytes]) -> None:
        self.book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_numbers": False})
        add = self.book.add_format
        self.title = add({"bold": True, "font_size": 14})
        self.header = add({"bold": True, "bg_color": "#DDEBF7", "text_wrap": True, "valign": "top"})
        self.date = add({"num_format": "yyyy-mm-dd"})
        self.time = add({"num_format": "hh:mm"})
        self.int = add({"num_format": "0"})
        self.dec1 = add({"num_format": "0.0"})
        self.dec2 = add({"num_format": "0.00"})
        self.pct = add({"num_format": "0.0 %"})
        self.dur = add({"num_format": "[m]:ss"})
        self.bold = add({"bold": True})

    def header_row(self, sheet: Any, row: int, headers: Sequence[str]) -> None:
        for col, text in enumerate(headers):
            sheet.write_string(row, col, text, self.header)

    def number(self, sheet: Any, row: int, col: int, value: float | None, fmt: Any = None) -> None:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            sheet.write_blank(row, col, None)
        else:
            sheet.write_number(row, col, value, fmt)

    def close(self) -> None:
        self.book.close()


def _excel_date(day: date) -> float:
    return float((day - date(1899, 12, 30)).days)


def plan_xlsx(plan: Plan, lang: Lang, out: BinaryIO | IO[bytes]) -> None:
    def w(key: str) -> str:
        return word(key, lang)

    b = _Book(out)
    summary = b.book.add_worksheet(w("summary"))
    summary.write_string(0, 0, f"{w('title')} {plan.week} ({span_label(plan.days[0], plan.days[-1], lang)})", b.title)
    summary.write_string(1, 0, w("subtitle"))
    summary.write_string(
        2,
        0,
        f"{w('history')} {span_label(plan.history_first, plan.history_last, lang)} "
        f"({plan.history_days} {w('days_with_data')})",
    )
    for i, note in enumerate(plan.notes):
        summary.write_string(3 + i, 0, f"{w('notes')}: {note}", b.bold)
    top = 4 + len(plan.notes)
    headers = [
        w("queue"), w("name"), w("calls"), w("agent_hours"), w("peak"), w("talk"), w("wrap_up"), w("handle"),
        w("patience"), w("base_share"), w("month_start"), f"{w('service_level')} ({w('target')})",
        f"{w('service_level')} s", f"{w('answer_rate')} ({w('target')})", f"{w('source')}: {w('talk')}",
        f"{w('source')}: {w('wrap_up')}", f"{w('source')}: {w('patience')}",
    ]  # fmt: skip
    b.header_row(summary, top, headers)
    for i, qp in enumerate(plan.queues, start=top + 1):
        p: Parameters = qp.parameters
        queue = qp.queue
        summary.write_string(i, 0, queue.id)
        summary.write_string(i, 1, queue.name)
        b.number(summary, i, 2, qp.calls, b.dec1)
        b.number(summary, i, 3, qp.agent_hours, b.dec1)
        b.number(summary, i, 4, qp.peak, b.int)
        for col, seconds in (
            (5, p.talk_seconds),
            (6, p.wrap_up_seconds),
            (7, p.handle_seconds),
            (8, p.patience_seconds),
        ):
            b.number(summary, i, col, seconds / 86400, b.dur)
        b.number(summary, i, 9, p.base_share, b.pct)
        b.number(summary, i, 10, qp.model.month_start, b.dec2)
        b.number(summary, i, 11, queue.service_level_target, b.pct)
        b.number(summary, i, 12, queue.service_level_seconds, b.int)
        b.number(summary, i, 13, queue.answer_rate_target, b.pct)
        for col, source in ((14, p.talk_source), (15, p.wrap_up_source), (16, p.patience_source)):
            summary.write_string(i, col, SOURCES[source][lang])
    summary.set_column(0, 0, 22)
    summary.set_column(1, 1, 40)
    summary.set_column(2, 16, 12)

    ids = [qp.queue.id for qp in plan.queues]
    for sheet_name, value, fmt in ((w("agents"), "agents", b.int), (w("forecast_calls"), "calls", b.dec2)):
        sheet = b.book.add_worksheet(sheet_name)
        b.header_row(sheet, 0, [w("date"), w("weekday"), w("time"), *ids, w("total")])
        slots = {(qp.queue.id, s.day, s.slot): s for qp in plan.queues for s in qp.slots if s.open_seconds > 0}
        keys = sorted({(day, slot) for _, day, slot in slots})
        for r, (day, slot) in enumerate(keys, start=1):
            sheet.write_number(r, 0, _excel_date(day), b.date)
            sheet.write_string(r, 1, WEEKDAYS[lang][day.weekday()])
            sheet.write_number(r, 2, slot / SLOTS_PER_DAY, b.time)
            for c, q in enumerate(ids, start=3):
                x = slots.get((q, day, slot))
                if x is not None:
                    sheet.write_number(r, c, getattr(x, value), fmt)
            sheet.write_formula(r, 3 + len(ids), f"=SUM(D{r + 1}:{_column(2 + len(ids))}{r + 1})", fmt)
        if keys:
            scale = {"type": "2_color_scale", "min_color": "#FFFFFF", "max_color": "#F8696B"}
            sheet.conditional_format(1, 3, len(keys), 2 + len(ids), scale)
        sheet.freeze_panes(1, 3)
        sheet.set_column(0, 0, 11)
        sheet.set_column(3, 3 + len(ids), 9)

    rows = b.book.add_worksheet(w("rows"))
    b.header_row(rows, 0, PLAN_COLUMNS)
    for r, row in enumerate(plan_rows(plan), start=1):
        for c, v in enumerate(row):
            if v is None:
                rows.write_blank(r, c, None)
            elif isinstance(v, str):
                rows.write_string(r, c, v)
            else:
                rows.write_number(r, c, v)
    rows.autofilter(0, 0, max(1, len(plan_rows(plan))), len(PLAN_COLUMNS) - 1)
    rows.freeze_panes(1, 0)
    b.close()


def _column(index: int) -> str:
    """Excel's column letters of a 0-based index."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


# -- the backtest ------------------------------------------------------------------------------


def backtest_rows(bt: Backtest) -> list[list[Any]]:
    """One row per queue and week, one per queue over the range (week `all`), and the centre's
    total (queue `all`)."""
    rows = []
    for q, weeks in bt.scores.items():
        for monday, score in weeks.items():
            rows.append(_score_row(q, iso_week(monday), score))
        rows.append(_score_row(q, "all", bt.queue_total(q)))
    for monday in bt.mondays:
        rows.append(_score_row("all", iso_week(monday), bt.week_total(monday)))
    rows.append(_score_row("all", "all", bt.total()))
    return rows


def _score_row(queue: str, week: str, s: Score) -> list[Any]:
    return [
        queue,
        week,
        s.slots,
        round(s.actual, 4),
        round(s.forecast, 4),
        _rounded(s.wape),
        _rounded(s.floor_wape),
        _rounded(s.naive_wape),
        _rounded(s.mape_slots),
        _rounded(s.mape_days),
        round(s.agents_forecast, 2),
        round(s.agents_actual, 2),
        _rounded(s.agents_bias),
        _rounded(s.agents_mae),
        _rounded(s.under_share),
    ]


def backtest_csv(bt: Backtest, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(BACKTEST_COLUMNS)
    writer.writerows([["" if v is None else v for v in row] for row in backtest_rows(bt)])


def backtest_table(bt: Backtest, lang: Lang, out: TextIO) -> None:
    def w(key: str) -> str:
        return word(key, lang)

    print(f"{w('backtest')} {range_label(bt, lang)}", file=out)
    print(textwrap.fill(w("backtest_sub").format(n=weeks(bt.history_weeks, lang)), WIDTH), file=out)
    if bt.missing_days:
        shown = ", ".join(d.isoformat() for d in bt.missing_days[:5]) + (" …" if len(bt.missing_days) > 5 else "")
        print(f"{w('notes')}: {len(bt.missing_days)} {w('missing')} ({shown})", file=out)
    print(file=out)
    ids = list(bt.scores)
    width = max(len(w("all")), *(len(q) for q in ids))
    cols = ("actual", "wape", "floor", "naive", "mape_slots", "mape_days", "bias", "under")
    print(f"{w('queue'):<{width}}" + "".join(f"{w(c):>7}" for c in cols), file=out)
    for name, s in [*((q, bt.queue_total(q)) for q in ids), (w("all"), bt.total())]:
        values = (percent(s.wape), percent(s.floor_wape), percent(s.naive_wape), percent(s.mape_slots))
        print(
            f"{name:<{width}}{s.actual:>7.0f}"
            + "".join(f"{v:>7}" for v in values)
            + f"{percent(s.mape_days):>7}{_signed(s.agents_bias):>7}{percent(s.under_share):>7}",
            file=out,
        )
    print(file=out)
    print(textwrap.fill(w("legend_backtest"), WIDTH), file=out)


def weeks(n: int, lang: Lang) -> str:
    """`1 vecka`, `8 veckor`."""
    return f"{n} {word('week' if n == 1 else 'weeks_word', lang)}"


def range_label(bt: Backtest, lang: Lang) -> str:
    first, last = iso_week(bt.mondays[0]), iso_week(bt.mondays[-1])
    return f"{first} ({weeks(1, lang)})" if first == last else f"{first}–{last} ({weeks(len(bt.mondays), lang)})"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def _plain(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def backtest_xlsx(bt: Backtest, lang: Lang, out: BinaryIO | IO[bytes]) -> None:
    def w(key: str) -> str:
        return word(key, lang)

    b = _Book(out)
    headers = [
        w("queue"), w("week"), "open_slots", w("actual"), w("forecast"), w("wape"), w("floor"), w("naive"),
        w("mape_slots"), w("mape_days"), f"{w('agent_hours')} ({w('forecast')})", f"{w('agent_hours')} ({w('actual')})",
        w("bias"), w("mae"), w("under"),
    ]  # fmt: skip
    formats = [
        None,
        None,
        b.int,
        b.dec1,
        b.dec1,
        b.pct,
        b.pct,
        b.pct,
        b.pct,
        b.pct,
        b.dec1,
        b.dec1,
        b.dec2,
        b.dec2,
        b.pct,
    ]
    all_rows = backtest_rows(bt)
    for name, rows in (
        (w("summary"), [r for r in all_rows if r[1] == "all"]),
        (w("weeks"), [r for r in all_rows if r[1] != "all"]),
    ):
        sheet = b.book.add_worksheet(name)
        sheet.write_string(0, 0, f"{w('backtest')} {range_label(bt, lang)}", b.title)
        sheet.write_string(1, 0, w("backtest_sub").format(n=weeks(bt.history_weeks, lang)))
        sheet.write_string(2, 0, w("legend_backtest"))
        b.header_row(sheet, 4, headers)
        for r, row in enumerate(rows, start=5):
            for c, v in enumerate(row):
                if isinstance(v, str):
                    sheet.write_string(r, c, w("all") if v == "all" else v)
                else:
                    b.number(sheet, r, c, v, formats[c])
        sheet.autofilter(4, 0, 4 + max(1, len(rows)), len(headers) - 1)
        sheet.freeze_panes(5, 2)
        sheet.set_column(0, 0, 22)
        sheet.set_column(1, len(headers) - 1, 11)
    b.close()
