"""The monthly report as one self-contained HTML file: opened from a mail or a file share without
network (inline CSS, charts as inline SVG, no script), readable on a phone, printable on A4.

Everything shown comes from the model: the measures, labels, targets, met or missed and how a
value is written. This module only lays it out. Every number cell carries its exact JSON value
and its identity as data-* attributes (a row of model.rows()), so a test or a script can check
the page against the report without reading Swedish number formats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from dashboards.reporting import model
from dashboards.reporting.model import Channel, Lang, Row
from schemas.agreements import Agreements, level_key

# Words the model does not have (yet).
WORDS: dict[str, dict[Lang, str]] = {
    "contents": {"sv": "Innehåll", "en": "Contents"},
    "month_detail": {"sv": "Månaden per process", "en": "The month per process"},
    "all_measures": {"sv": "Alla mått {view}: {name}", "en": "All measures {view}: {name}"},
    "sl_target": {"sv": "{target} inom {seconds} s", "en": "{target} within {seconds} s"},
    "lead_target": {"sv": "Ledtidsmål", "en": "Lead-time target"},
    "not_judged": {"sv": "ej bedömt", "en": "not judged"},
    "per_day_phone": {
        "sv": "Servicenivå per dag och kö, mot köns mål. Tom ruta: inga samtal den dagen.",
        "en": "Service level per day and queue, against the queue's target. Empty: no calls that day.",
    },
    "per_day_mail": {
        "sv": "Ärenden över ledtid per dag och brevlåda (dagen ärendet öppnades). Tom ruta: inga ärenden.",
        "en": "Cases past lead time per day and mailbox (the day the case opened). Empty: no cases.",
    },
    "per_hour": {
        "sv": "Samtal per timme på dygnet under månaden: erbjudna och besvarade i öppettid, och samtal "
        "utanför öppettid – efterfrågan som inte kunde mötas.",
        "en": "Calls per hour of the day over the month: offered and answered in opening hours, and calls "
        "out of hours – the demand that could not be met.",
    },
    "per_hour_mail": {
        "sv": "Inkomna ärenden per timme på dygnet då de öppnades, och hur många av dem som besvarades.",
        "en": "Cases received per hour of the day they were opened, and how many of them were answered.",
    },
    "trend_phone": {
        "sv": "Servicenivå per månad mot målet (streckad linje). Månader utan samtal saknar punkt.",
        "en": "Service level per month against the target (dashed line). Months without calls have no point.",
    },
    "trend_mail": {
        "sv": "Ärenden besvarade inom ledtid och över ledtid per månad.",
        "en": "Cases answered within and past the lead time per month.",
    },
    "hour_axis": {"sv": "Timme (lokal tid)", "en": "Hour (local time)"},
    "no_rows": {"sv": "Inga data.", "en": "No data."},
}

# The definitions' terms that are no measure (the measures' own labels name the others).
DEFINITION_TERMS: dict[str, dict[Lang, str]] = {
    "contact": {"sv": "Kontakt", "en": "Contact"},
    "period": {"sv": "Period", "en": "Period"},
    "service_levels": {"sv": "Extra servicenivåer", "en": "Extra service levels"},
    "lead_time": {"sv": "Ledtid", "en": "Lead time"},
    "evaluation_time": {"sv": "Bedömningstid", "en": "Evaluation time"},
    "conflicting_duplicates": {"sv": "Motstridiga dubbletter", "en": "Conflicting duplicates"},
    "views": {"sv": "Dag, timme, månad", "en": "Day, hour, month"},
    "met": {"sv": "Uppfyllt", "en": "Met"},
}

VIEW_WORDS: dict[str, dict[Lang, str]] = {
    "days": {"sv": "per dag", "en": "per day"},
    "hours": {"sv": "per timme", "en": "per hour"},
    "months": {"sv": "per månad", "en": "per month"},
}

SUB_MEASURES = ("short_abandoned", "service_levels.")  # shown indented under the measure before them

Key = tuple[str, str, str, str, str]  # channel, process, view, period, measure


def _w(key: str, lang: Lang, **values: Any) -> str:
    return WORDS[key][lang].format(**values)


def _number(value: float | int | None) -> str:
    """A JSON number as its exact text (what json.dumps writes); empty for null."""
    return "" if value is None else repr(value)


def _attrs(**attrs: str) -> str:
    """`data_value="x"` -> ` data-value="x"`, escaped."""
    return "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())


@dataclass(frozen=True)
class _Page:
    """One rendering: the report, its agreements and language, and its numbers by identity."""

    report: dict[str, Any]
    agreements: Agreements
    lang: Lang
    numbers: dict[Key, Row]

    def row(self, channel: Channel, process: str, view: str, period: str, measure: str) -> Row | None:
        return self.numbers.get((channel, process, view, period, measure))

    def t(self, key: str, **values: Any) -> str:
        return escape(model.text(key, self.lang, **values))

    def w(self, key: str, **values: Any) -> str:
        return escape(_w(key, self.lang, **values))

    def fmt(self, value: float | int | None, unit: model.Unit) -> str:
        return escape(model.fmt(value, unit, self.lang))

    def name(self, channel: Channel, process: str) -> str:
        return escape(model.process_name(self.agreements, channel, process))

    def ids(self, channel: Channel) -> list[str]:
        return model.ids(self.agreements, channel)


# -- cells ---------------------------------------------------------------------------------------


def _cell(page: _Page, row: Row | None, *, marked: bool = False, label: str = "") -> str:
    """A number cell: its text as the model writes it, its exact value and identity as data-*.
    `marked` adds the ✓/✗ after the number (CSS), for tables without a mark column; `label`
    names the number where a phone shows the row as a card without the column heads."""
    extra: dict[str, str] = {"data_label": label} if label else {}
    if row is None:
        return f'<td class="num absent"{_attrs(**extra)}></td>'
    classes = ["num"]
    if row.target is not None:
        extra |= {"data_target": _number(row.target), "data_met": "" if row.met is None else str(row.met).lower()}
        classes.append({True: "met", False: "missed", None: "nodata"}[row.met])
        if marked:
            classes.append("marked")
    ident = _attrs(
        data_measure=row.measure,
        data_process=row.process,
        data_channel=row.channel,
        data_view=row.view,
        data_period=row.period,
        data_value=_number(row.value),
        **extra,
    )
    return f'<td class="{" ".join(classes)}"{ident}>{page.fmt(row.value, row.unit)}</td>'


def _mark(page: _Page, met: bool | None) -> str:
    """The met/missed mark as text (it survives black-and-white print), coloured as well."""
    if met is None:
        return '<td class="mark"></td>'
    word = page.t("met_yes" if met else "met_no")
    cls = "met" if met else "missed"
    return f'<td class="mark {cls}"><span role="img" aria-label="{word}" title="{word}">{model.MARK[met]}</span></td>'


def _target_text(page: _Page, channel: Channel, process: str, key: str, *, threshold: bool = False) -> str:
    """What a measure is judged against, or the reference shown beside it; empty when neither.
    `threshold` adds a queue's service-level seconds (for a column over queues of different ones)."""
    t = model.target(page.agreements, channel, process, key) or model.reference(page.agreements, channel, process, key)
    if t is None:
        return ""
    if threshold and channel == "queues" and key == "service_level":
        seconds = level_key(page.agreements.queues[process].service_level_seconds)
        return page.w("sl_target", target=model.fmt(t.value, t.unit, page.lang), seconds=seconds)
    return page.fmt(t.value, t.unit)


def _target_cell(
    page: _Page,
    channel: Channel,
    process: str,
    key: str,
    *,
    threshold: bool = False,
    note: bool = True,
    label: str = "",
) -> str:
    """The target beside a value; a reference (not judged) says so, unless its column head does."""
    shown = _target_text(page, channel, process, key, threshold=threshold)
    if shown and note and model.target(page.agreements, channel, process, key) is None:
        shown += f'<span class="note">{page.w("not_judged")}</span>'
    return f'<td class="num target"{_attrs(data_label=label) if label else ""}>{shown}</td>'


def _scroll(table: str) -> str:
    """A table in its own sideways-scrolling box: a narrow screen scrolls the table, not the page."""
    return f'<div class="scroll">{table}</div>'


# -- the sections ------------------------------------------------------------------------------


def _header(page: _Page, sections: list[tuple[str, str]]) -> str:
    """Title, month and evaluation time, the notices as a banner, and links to the sections."""
    r = page.report
    month = model.period_label("months", r["month"], page.lang)
    evaluated = model.local_time(r["evaluated_at"], page.agreements)
    notices = model.notices(r, page.agreements, page.lang)
    banner = ""
    if notices:
        items = "".join(f"<li>{escape(n)}</li>" for n in notices)
        banner = f'<div class="notices" role="alert"><ul>{items}</ul></div>'
    nav = "".join(f'<li><a href="#{sid}">{label}</a></li>' for sid, label in sections)
    return (
        f'<header class="top"><h1>{page.t("title", month=month)}</h1>'
        f'<p class="lede">{page.t("evaluated", time=evaluated)}</p>'
        f'<p class="legend">{page.t("mark_legend")}</p></header>'
        f'{banner}<nav aria-label="{page.w("contents")}"><ul>{nav}</ul></nav>'
    )


# The summary's columns: counts for context, the judged measures beside their targets and marks,
# and a measure shown beside a reference it is not judged against.
SUMMARY: dict[Channel, tuple[tuple[str, str], ...]] = {
    "queues": (("offered", "plain"), ("answered", "plain"), ("service_level", "judged"), ("answer_rate", "judged")),
    "mailboxes": (
        ("received", "plain"),
        ("answered", "plain"),
        ("within_target", "plain"),
        ("breached", "judged"),
        ("median_lead_seconds", "reference"),
    ),
}


def _summary(page: _Page, channel: Channel) -> str:
    """One row per process: the promises, kept or not (on a phone each row becomes a card)."""
    month = page.report["month"]
    head1 = f'<th rowspan="2" scope="col">{page.t("process")}</th>'
    head2 = ""
    labels: dict[str, tuple[str, str]] = {}  # key -> (value label, target label), shown on a phone
    for key, kind in SUMMARY[channel]:
        raw = model.generic(channel, key).label(page.lang)
        label = escape(raw)
        if kind == "plain":
            head1 += f'<th rowspan="2" scope="col" class="num">{label}</th>'
            labels[key] = (raw, "")
            continue
        head1 += f'<th colspan="{3 if kind == "judged" else 2}" scope="colgroup" class="group">{label}</th>'
        head2 += f'<th class="num">{page.t("value")}</th>'
        if kind == "judged":
            head2 += f'<th class="num">{page.t("target")}</th><th>{page.t("met")}</th>'
            labels[key] = (raw, model.text("target", page.lang))
        else:
            head2 += f'<th class="num">{page.w("lead_target")}<span class="note">{page.w("not_judged")}</span></th>'
            labels[key] = (raw, _w("lead_target", page.lang))
    body = []
    for p in page.ids(channel):
        cells = ""
        for key, kind in SUMMARY[channel]:
            r = page.row(channel, p, "month", month, key)
            cells += _cell(page, r, label=labels[key][0])
            if kind != "plain":
                cells += _target_cell(page, channel, p, key, threshold=True, note=False, label=labels[key][1])
            if kind == "judged":
                cells += _mark(page, r.met if r else None)
        body.append(f'<tr><th scope="row">{page.name(channel, p)}</th>{cells}</tr>')
    table = (
        f'<table class="summary"><thead><tr>{head1}</tr><tr>{head2}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )
    return f"<h3>{page.t('phone' if channel == 'queues' else 'mail')}</h3>{_scroll(table)}"


def _month_cards(page: _Page, channel: Channel) -> str:
    """A card per process with every measure of the month, extra service levels under the main one."""
    month = page.report["month"]
    cards = []
    for p in page.ids(channel):
        trs = []
        for m in model.measures(page.agreements, channel, p):
            r = page.row(channel, p, "month", month, m.key)
            sub = ' class="sub"' if m.key.startswith(SUB_MEASURES) else ""
            trs.append(
                f'<tr{sub}><th scope="row">{escape(m.label(page.lang))}</th>{_cell(page, r)}'
                f"{_target_cell(page, channel, p, m.key)}{_mark(page, r.met if r else None)}</tr>"
            )
        head = (
            f'<tr><th scope="col">{page.t("measure")}</th><th scope="col" class="num">{page.t("value")}</th>'
            f'<th scope="col" class="num">{page.t("target")}</th><th scope="col">{page.t("met")}</th></tr>'
        )
        cards.append(
            f'<article class="card"><h4>{page.name(channel, p)}</h4>'
            f'<table class="measures"><thead>{head}</thead><tbody>{"".join(trs)}</tbody></table></article>'
        )
    title = page.t("phone" if channel == "queues" else "mail")
    return f'<h3>{title}</h3><div class="cards">{"".join(cards)}</div>'


def _heatmap(page: _Page, channel: Channel, key: str) -> str:
    """Days down, processes across: one measure, each cell marked met or missed."""
    heads = []
    for p in page.ids(channel):
        note = f"{page.t('target')}: {_target_text(page, channel, p, key, threshold=True)}"
        heads.append(f'<th scope="col" class="num">{page.name(channel, p)}<span class="note">{note}</span></th>')
    body = []
    for day in model.periods(page.report, "days"):
        cells = "".join(_cell(page, page.row(channel, p, "days", day, key), marked=True) for p in page.ids(channel))
        label = escape(model.period_label("days", day, page.lang))
        body.append(f'<tr><th scope="row">{label}</th>{cells}</tr>')
    first = page.t("period")
    table = (
        f'<table class="heat"><thead><tr><th scope="col">{first}</th>{"".join(heads)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    return _scroll(table)


def _detail(page: _Page, channel: Channel, process: str, view: str) -> str:
    """Every measure of a process per period with data, folded away: the numbers behind a view."""
    measures = model.measures(page.agreements, channel, process, view)
    head = f'<th scope="col">{page.t("period")}</th>' + "".join(
        f'<th scope="col" class="num">{escape(m.label(page.lang))}</th>' for m in measures
    )
    body = []
    for period in model.periods(page.report, view):
        if model.entry(page.report, channel, process, view, period) is None:
            continue
        cells = "".join(_cell(page, page.row(channel, process, view, period, m.key), marked=True) for m in measures)
        label = escape(model.period_label(view, period, page.lang))
        body.append(f'<tr><th scope="row">{label}</th>{cells}</tr>')
    summary = page.w(
        "all_measures", view=VIEW_WORDS[view][page.lang], name=model.process_name(page.agreements, channel, process)
    )
    if not body:
        return f'<details class="detail"><summary>{summary}</summary><p class="muted">{page.w("no_rows")}</p></details>'
    table = f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return f'<details class="detail"><summary>{summary}</summary>{_scroll(table)}</details>'


def _details(page: _Page, channel: Channel, view: str) -> str:
    """The folded tables of every process of a channel (the per-day view has no chart cards)."""
    return '<div class="details">' + "".join(_detail(page, channel, p, view) for p in page.ids(channel)) + "</div>"


def _days(page: _Page) -> str:
    phone = f'<p class="intro">{page.w("per_day_phone")}</p>{_heatmap(page, "queues", "service_level")}'
    mail = f'<p class="intro">{page.w("per_day_mail")}</p>{_heatmap(page, "mailboxes", "breached")}'
    return (
        f'<div class="part"><h3>{page.t("phone")}</h3>{phone}{_details(page, "queues", "days")}</div>'
        f'<div class="part"><h3>{page.t("mail")}</h3>{mail}{_details(page, "mailboxes", "days")}</div>'
    )


def _chart_cards(page: _Page, channel: Channel, view: str) -> str:
    """A card per process: its chart of the view, and under it the view's numbers folded away."""
    cards = []
    for p in page.ids(channel):
        chart = _trend_chart(page, p) if (view, channel) == ("months", "queues") else _bar_chart(page, channel, p, view)
        cards.append(
            f'<figure class="chart card"><figcaption>{page.name(channel, p)}</figcaption>'
            f"{chart}{_detail(page, channel, p, view)}</figure>"
        )
    return f'<div class="cards charts">{"".join(cards)}</div>'


def _hours(page: _Page) -> str:
    return (
        f'<h3>{page.t("phone")}</h3><p class="intro">{page.w("per_hour")}</p>{_chart_cards(page, "queues", "hours")}'
        f'<h3>{page.t("mail")}</h3><p class="intro">{page.w("per_hour_mail")}</p>'
        f"{_chart_cards(page, 'mailboxes', 'hours')}"
    )


def _months(page: _Page) -> str:
    return (
        f'<h3>{page.t("phone")}</h3><p class="intro">{page.w("trend_phone")}</p>'
        f"{_chart_cards(page, 'queues', 'months')}"
        f'<h3>{page.t("mail")}</h3><p class="intro">{page.w("trend_mail")}</p>'
        f"{_chart_cards(page, 'mailboxes', 'months')}"
    )


def _definitions(page: _Page) -> str:
    labels = {m.key: m.label(page.lang) for m in (*model.PHONE, *model.MAIL)}
    items = []
    for key, meaning in model.definitions(page.report, page.lang).items():
        term = DEFINITION_TERMS[key][page.lang] if key in DEFINITION_TERMS else labels.get(key, key)
        items.append(f"<dt>{escape(term)}</dt><dd>{escape(meaning)}</dd>")
    return f'<dl class="definitions">{"".join(items)}</dl><p class="legend">{page.t("mark_legend")}</p>'


# -- charts (inline SVG; positions only, every number shown is written by model.fmt) -------------

CHART_W, CHART_H = 560, 230
PAD_L, PAD_R, PAD_T, PAD_B = 48, 14, 34, 40
COLOURS = {
    "offered": "#9fb8d9",
    "received": "#9fb8d9",
    "answered": "#2d5b8c",
    "out_of_hours": "#d98b2b",
    "line": "#2d5b8c",
    "target": "#555d66",
    "within_target": "#3b8c5a",
    "breached": "#c0392b",
    "grid": "#e3e7ec",
    "axis": "#8a939c",
}


def _count_step(top: float, ticks: int = 4) -> float:
    """A count axis step of 1, 2 or 5 times a power of ten giving about `ticks` intervals up to
    `top`; never below 1 (a count has no fractions to mark)."""
    raw = max(top, 1) / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    return max(1.0, next(f * power for f in (1, 2, 5, 10) if f * power >= raw))


def _svg_open(page: _Page, chart_id: str, channel: Channel, process: str, view: str) -> str:
    """An inline chart (no xmlns needed in HTML), named for screen readers: `Redovisning: Per timme`."""
    title = f"{model.process_name(page.agreements, channel, process)}: {model.text(view, page.lang)}"
    return (
        f'<svg class="plot" viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-labelledby="{chart_id}">'
        f'<title id="{chart_id}">{escape(title)}</title>'
    )


def _legend(items: list[tuple[str, str, str]]) -> str:
    """Swatches left to right at the top: (colour, label, box | line | dashed)."""
    out, x = [], PAD_L
    for colour, label, style in items:
        if style != "box":
            dash = ' stroke-dasharray="4 3"' if style == "dashed" else ""
            out.append(f'<line x1="{x}" y1="14" x2="{x + 16}" y2="14" stroke="{colour}" stroke-width="2"{dash}/>')
        else:
            out.append(f'<rect x="{x}" y="8" width="12" height="12" rx="2" fill="{colour}"/>')
        out.append(f'<text x="{x + 20}" y="18" class="lg">{escape(label)}</text>')
        x += 20 + 7 * len(label) + 18
    return "".join(out)


def _y_axis(page: _Page, ticks: list[float], scale: Callable[[float], float], unit: model.Unit) -> str:
    """Grid lines at the ticks, labelled as the model writes values, and the base line."""
    out = []
    for tick in ticks:
        y = scale(tick)
        out.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{CHART_W - PAD_R}" y2="{y:.1f}" stroke="{COLOURS["grid"]}"/>')
        out.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" class="tk" text-anchor="end">{page.fmt(tick, unit)}</text>')
    base = CHART_H - PAD_B
    out.append(f'<line x1="{PAD_L}" y1="{base}" x2="{CHART_W - PAD_R}" y2="{base}" stroke="{COLOURS["axis"]}"/>')
    return "".join(out)


def _label(x: float, y: float, cls: str, content: str, anchor: str = "middle") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}" text-anchor="{anchor}">{escape(content)}</text>'


def _bar(x: float, width: float, top: float, colour: str, tip: str) -> str:
    base = CHART_H - PAD_B
    height = max(base - top, 0)
    return (
        f'<rect x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" height="{height:.1f}" fill="{colour}">'
        f"<title>{escape(tip)}</title></rect>"
    )


# Each bar chart: slots side by side in a period's band; the measures of a slot drawn over each
# other, the part before the whole (answered inside offered): no number is added up to draw it.
BAR_SLOTS: dict[tuple[str, Channel], tuple[tuple[str, ...], ...]] = {
    ("hours", "queues"): (("offered", "answered"), ("out_of_hours",)),
    ("hours", "mailboxes"): (("received", "answered"),),
    ("months", "mailboxes"): (("within_target",), ("breached",)),
}


def _bar_chart(page: _Page, channel: Channel, process: str, view: str) -> str:
    """Counts per period (the hours of the day or the 13 months) as bars on a labelled axis."""
    periods = model.periods(page.report, view)
    slots = BAR_SLOTS[(view, channel)]
    keys = [k for slot in slots for k in slot]
    values = {(p, k): page.row(channel, process, view, p, k) for p in periods for k in keys}
    top = max((r.value for r in values.values() if r is not None and r.value is not None), default=0)
    step = _count_step(top)
    ceiling = step * max(math.ceil(top / step), 1)
    plot_h = CHART_H - PAD_T - PAD_B

    def scale(v: float) -> float:
        return CHART_H - PAD_B - plot_h * v / ceiling

    band = (CHART_W - PAD_L - PAD_R) / len(periods)
    width = band * 0.8 / len(slots)
    labels = {m.key: m.label(page.lang) for m in model.measures(page.agreements, channel, process, view)}
    parts = [
        _svg_open(page, f"chart-{view}-{channel}-{process}", channel, process, view),
        _legend([(COLOURS[k], labels[k], "box") for k in keys]),
        _y_axis(page, [i * step for i in range(round(ceiling / step) + 1)], scale, "count"),
    ]
    for i, period in enumerate(periods):
        x = PAD_L + i * band + band * 0.1
        when = model.period_label(view, period, page.lang)
        for j, slot in enumerate(slots):
            for k in slot:
                r = values[(period, k)]
                if r is not None and r.value:
                    tip = f"{when}: {labels[k]} {model.fmt(r.value, r.unit, page.lang)}"
                    parts.append(_bar(x + j * width, width, scale(r.value), COLOURS[k], tip))
        if view == "hours" and i % 2 == 0:
            parts.append(_label(PAD_L + (i + 0.5) * band, CHART_H - PAD_B + 14, "tk", period))
    if view == "hours":
        parts.append(_label((PAD_L + CHART_W - PAD_R) / 2, CHART_H - 6, "ax", _w("hour_axis", page.lang)))
    else:
        parts.append(_month_ticks(page, periods, band))
    return "".join(parts) + "</svg>"


def _month_ticks(page: _Page, months: list[str], band: float) -> str:
    """Month names under the x axis, the year under the first month and under each January."""
    out = []
    for i, month in enumerate(months):
        x = PAD_L + (i + 0.5) * band
        name, year = model.period_label("months", month, page.lang).split(" ")
        out.append(_label(x, CHART_H - PAD_B + 14, "tk", name))
        if i == 0 or month.endswith("-01"):
            out.append(_label(x, CHART_H - PAD_B + 27, "tk", year))
    return "".join(out)


def _trend_chart(page: _Page, queue: str) -> str:
    """The queue's service level month by month, the target as a dashed line; a gap where a month
    had no calls."""
    months = model.periods(page.report, "months")
    rows = [page.row("queues", queue, "months", m, "service_level") for m in months]
    t = model.target(page.agreements, "queues", queue, "service_level")
    assert t is not None  # a queue always promises a service level
    seen = [r.value for r in rows if r is not None and r.value is not None] + [t.value]
    floor = max(0.0, math.floor(min(seen) * 10 - 1) / 10)
    plot_h = CHART_H - PAD_T - PAD_B

    def scale(v: float) -> float:
        return CHART_H - PAD_B - plot_h * (v - floor) / (1 - floor)

    step = 0.1 if 1 - floor <= 0.5 else 0.2
    ticks = [floor + i * step for i in range(round((1 - floor) / step) + 1)]
    band = (CHART_W - PAD_L - PAD_R) / len(months)
    label = model.phone_label(page.agreements, queue, "service_level", page.lang)
    target_label = f"{model.text('target', page.lang)} {model.fmt(t.value, t.unit, page.lang)}"
    parts = [
        _svg_open(page, f"chart-months-queues-{queue}", "queues", queue, "months"),
        _legend([(COLOURS["line"], label, "line"), (COLOURS["target"], target_label, "dashed")]),
        _y_axis(page, ticks, scale, "ratio"),
        f'<line x1="{PAD_L}" y1="{scale(t.value):.1f}" x2="{CHART_W - PAD_R}" y2="{scale(t.value):.1f}" '
        f'stroke="{COLOURS["target"]}" stroke-width="1.5" stroke-dasharray="5 4"/>',
    ]
    segment: list[str] = []
    points = []
    for i, r in enumerate([*rows, None]):
        if r is None or r.value is None:
            if len(segment) > 1:
                parts.append(
                    f'<polyline points="{" ".join(segment)}" fill="none" stroke="{COLOURS["line"]}" stroke-width="2"/>'
                )
            segment = []
            continue
        x, y = PAD_L + (i + 0.5) * band, scale(r.value)
        segment.append(f"{x:.1f},{y:.1f}")
        tip = f"{model.period_label('months', r.period, page.lang)}: {model.fmt(r.value, r.unit, page.lang)}"
        colour = COLOURS["within_target"] if r.met else COLOURS["breached"]
        points.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}" stroke="#fff" stroke-width="1.5">'
            f"<title>{escape(tip)}</title></circle>"
        )
        if r.period == page.report["month"]:
            shown = f"{model.fmt(r.value, r.unit, page.lang)} {model.MARK[r.met]}"
            points.append(_label(x - 6, y - 9, "vl", shown, anchor="end"))
    parts += points
    parts.append(_month_ticks(page, months, band))
    return "".join(parts) + "</svg>"


# -- the page ----------------------------------------------------------------------------------

CSS = """
:root{--ink:#1d2733;--muted:#5c6670;--line:#d9dee4;--soft:#f4f6f8;--accent:#1f3a5f;
--ok:#1d6b3a;--ok-bg:#e3f2e8;--bad:#a32a1f;--bad-bg:#fbe5e1;--warn-bg:#fff4d6;--warn:#7a5200}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;color:var(--ink);background:#fff;font:15px/1.45 system-ui,"Segoe UI",Roboto,"Helvetica Neue",
Arial,"DejaVu Sans",sans-serif;font-variant-numeric:tabular-nums}
main{max-width:1240px;margin:0 auto;padding:0 24px 48px}
header.top{border-bottom:3px solid var(--accent);padding:28px 0 14px;margin-bottom:16px}
h1{font-size:28px;margin:0 0 6px;color:var(--accent);letter-spacing:-.01em}
h2{font-size:21px;color:var(--accent);margin:40px 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:17px;margin:26px 0 8px}
h4{font-size:14px;margin:0 0 8px;color:var(--accent)}
.lede{margin:0;color:var(--muted);max-width:70em}
.legend{margin:6px 0 0;color:var(--muted);font-size:13px}
.intro{color:var(--muted);margin:0 0 10px;font-size:14px;max-width:70em}
.muted{color:var(--muted)}
.notices{background:var(--warn-bg);border:1px solid #e8c66a;border-left:6px solid #d4a017;color:var(--warn);
padding:10px 16px;margin:0 0 16px;border-radius:4px;font-weight:600}
.notices ul{margin:0;padding-left:18px}
nav ul{list-style:none;display:flex;flex-wrap:wrap;gap:6px 8px;margin:0;padding:0}
nav a{display:inline-block;padding:4px 10px;border:1px solid var(--line);border-radius:14px;color:var(--accent);
text-decoration:none;font-size:13px}
nav a:hover{background:var(--soft)}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:0 0 8px;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:13.5px}
th,td{padding:6px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;text-wrap:pretty}
thead th{background:var(--soft);font-weight:600;color:#33404d;vertical-align:bottom;font-size:12.5px}
th.group{text-align:center;border-left:1px solid var(--line)}
tbody tr:last-child>*{border-bottom:0}
tbody th{font-weight:500}
.num{text-align:right;white-space:nowrap}
thead th.num{white-space:normal}
td.target{color:var(--muted);white-space:nowrap}
td.mark{text-align:center;font-weight:700;width:2.5em}
td.mark.met,td.num.met{color:var(--ok)}
td.mark.missed,td.num.missed{color:var(--bad)}
td.mark.met{background:var(--ok-bg)}td.mark.missed{background:var(--bad-bg)}
table.summary td.num.met,table.summary td.num.missed{font-weight:700}
.scroll>table th:first-child{position:sticky;left:0;background:#fff;z-index:1}
.scroll>table thead th:first-child{background:var(--soft)}
td.marked::after{display:inline-block;width:1.1em;text-align:right;font-weight:700}
td.marked.met::after{content:"\\2713"}
td.marked.missed::after{content:"\\2717"}
td.marked.nodata::after{content:""}
table.heat td.num{font-size:12.5px}
table.heat td.met{background:var(--ok-bg)}
table.heat td.missed{background:var(--bad-bg)}
table.heat td.absent{background:#f1f3f5}
.note{display:block;font-weight:400;color:var(--muted);font-size:11px;margin-top:1px}
table.heat thead th{font-size:11.5px}
table.heat th,table.heat td{padding:5px 6px}
table.heat tbody th,table.grid tbody th{white-space:nowrap}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:14px}
.cards.charts{grid-template-columns:repeat(auto-fill,minmax(480px,1fr))}
.card{border:1px solid var(--line);border-radius:8px;padding:12px 14px;margin:0;break-inside:avoid}
table.measures{font-size:13px}
table.measures th,table.measures td{padding:4px 6px}
table.measures td{width:1%}
table.measures tr.sub th{padding-left:20px;font-weight:400;color:var(--muted)}
figure.chart figcaption{font-weight:600;color:var(--accent);font-size:14px;margin-bottom:4px}
svg.plot{width:100%;height:auto;display:block;font-family:inherit}
svg .tk{font-size:10.5px;fill:#5c6670}
svg .ax{font-size:11px;fill:#5c6670}
svg .lg{font-size:11.5px;fill:#33404d}
svg .vl{font-size:12px;font-weight:700;fill:#1d2733;paint-order:stroke;stroke:#fff;stroke-width:4px;
stroke-linejoin:round}
details.detail{margin:6px 0}
details.detail summary{cursor:pointer;color:var(--accent);font-size:13px;padding:3px 0}
.details{margin:8px 0 4px}
table.grid{font-size:12px}
table.grid th,table.grid td{padding:3px 7px}
dl.definitions{display:grid;grid-template-columns:minmax(10em,16em) 1fr;gap:6px 18px;font-size:14px}
dl.definitions dt{font-weight:600}
dl.definitions dd{margin:0;color:#33404d}
@media (max-width:600px){
body{font-size:14px}
main{padding:0 12px 32px}
h1{font-size:22px}
h2{font-size:18px;margin-top:28px}
.cards,.cards.charts{grid-template-columns:1fr}
dl.definitions{grid-template-columns:1fr}
dl.definitions dd{margin-bottom:8px}
table{font-size:12.5px}
table.summary thead{display:none}
table.summary,table.summary tbody{display:block}
table.summary tr{display:grid;grid-template-columns:1fr auto auto 2.4em;align-items:center;padding:8px 10px;
border-bottom:1px solid var(--line)}
table.summary tbody tr:last-child{border-bottom:0}
table.summary tr>*{border:0;padding:2px 4px;white-space:normal}
table.summary th[scope=row]{grid-column:1/-1;position:static;font-weight:600;color:var(--accent);padding-bottom:4px}
table.summary td.num:not(.target){grid-column:1/span 2;display:flex;justify-content:space-between;gap:8px}
table.summary td[data-label]::before{content:attr(data-label);color:var(--muted);font-weight:400;margin-right:4px;
text-align:left}
table.summary td.mark{padding:2px 0;border-radius:3px}
}
@page{size:A4;margin:12mm}
@page wide{size:A4 landscape;margin:12mm}
@media print{
#days{page:wide}
#days .part+.part{break-before:page}
table.heat{font-size:7pt}
table.heat th,table.heat td{padding:1px 4px;line-height:1.15}
h2{margin:0 0 6px}
h3{margin:10px 0 4px}
table.heat .note{font-size:6.5pt}
body{font-size:9pt;-webkit-print-color-adjust:exact;print-color-adjust:exact}
main{max-width:none;padding:0 2px}
nav{display:none}
header.top{padding-top:0}
section{break-before:page}
section:first-of-type{break-before:auto}
h2,h3,h4,.intro{break-after:avoid}
.scroll{overflow:visible;border:0}
table{font-size:8pt}
table.grid{font-size:7pt}
th,td{padding:2px 4px}
tr,.card,figure{break-inside:avoid}
thead{display:table-header-group}
.scroll>table th:first-child{position:static}
.cards,.cards.charts{display:block;columns:2;column-gap:8px}
.card{display:block;margin:0 0 8px}
details.detail:not([open]){display:none}
}
"""


def render_html(report: dict[str, Any], agreements: Agreements, lang: Lang) -> str:
    """The report as one HTML page that needs nothing else to show: summary, the month per process,
    per day, per hour, the 13-month trend and the definitions, every number from the model."""
    numbers: dict[Key, Row] = {
        (r.channel, r.process, r.view, r.period, r.measure): r for r in model.rows(report, agreements, lang)
    }
    page = _Page(report, agreements, lang, numbers)
    month = model.period_label("months", report["month"], lang)
    sections = [
        ("summary", page.t("summary"), _summary(page, "queues") + _summary(page, "mailboxes")),
        ("month", page.w("month_detail"), _month_cards(page, "queues") + _month_cards(page, "mailboxes")),
        ("days", page.t("days"), _days(page)),
        ("hours", page.t("hours"), _hours(page)),
        ("months", page.t("months"), _months(page)),
        ("definitions", page.t("definitions"), _definitions(page)),
    ]
    body = "".join(f'<section id="{sid}"><h2>{title}</h2>{content}</section>' for sid, title, content in sections)
    header = _header(page, [(sid, title) for sid, title, _ in sections])
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{page.t('title', month=month)}</title><style>{CSS}</style></head>"
        f"<body><main>{header}{body}</main></body></html>\n"
    )
