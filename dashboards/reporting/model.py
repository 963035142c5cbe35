"""What every human format of the monthly report shows, decided once: the measures with their
labels (Swedish and English), units and targets, met or missed, how a value is written, and the
report flattened to tidy rows (process, period, measure, value, target, met).

The renderers (xlsx, html, csv, table) lay these out; none of them computes a number. Every
value comes from the report object of dashboards/report.py, so each format holds exactly the
numbers of the JSON report.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from schemas.agreements import Agreements, level_key
from schemas.calendar import month_days

Lang = Literal["sv", "en"]
LANGS: tuple[Lang, ...] = ("sv", "en")
Channel = Literal["queues", "mailboxes"]
# count: a number of contacts or cases; ratio: a fraction (0.85 is 85 %); seconds: a wait
# (written m:ss); hours: a mail lead time in business seconds (written in hours).
Unit = Literal["count", "ratio", "seconds", "hours"]
VIEWS = ("month", "days", "hours", "months")  # the month per process, per day, per hour of day, the trend


@dataclass(frozen=True)
class Measure:
    key: str  # the JSON key; an extra service level is `service_levels.<threshold>`
    channel: Channel
    unit: Unit
    sv: str
    en: str

    def label(self, lang: Lang) -> str:
        return self.sv if lang == "sv" else self.en


def _m(key: str, channel: Channel, unit: Unit, sv: str, en: str) -> Measure:
    return Measure(key, channel, unit, sv, en)


# In the order the formats show them. service_level's label gets the queue's threshold.
PHONE = (
    _m("offered", "queues", "count", "Erbjudna", "Offered"),
    _m("answered", "queues", "count", "Besvarade", "Answered"),
    _m("service_level", "queues", "ratio", "Servicenivå", "Service level"),
    _m("answer_rate", "queues", "ratio", "Svarsfrekvens", "Answer rate"),
    _m("abandoned", "queues", "count", "Avbrutna i kö", "Abandoned"),
    _m("short_abandoned", "queues", "count", "varav korta", "of which short"),
    _m("callbacks", "queues", "count", "Återuppringning begärd", "Callback requests"),
    _m("flowed_out", "queues", "count", "Utflödade", "Flowed out"),
    _m("out_of_hours", "queues", "count", "Utanför öppettid", "Out of hours"),
    _m("asa_seconds", "queues", "seconds", "Medelväntetid", "Average wait (answered)"),
    _m("wait_p90_seconds", "queues", "seconds", "Väntetid 90:e percentil", "Wait, 90th percentile"),
    _m("max_wait_seconds", "queues", "seconds", "Längsta väntetid", "Longest wait"),
    _m("transferred_out", "queues", "count", "Kopplade vidare", "Transferred out"),
    _m("internal_transfers", "queues", "count", "Interna kopplingar", "Internal transfers"),
    _m("callers", "queues", "count", "Unika uppringare", "Distinct callers"),
    _m("callers_reached", "queues", "count", "Uppringare som fick svar", "Callers reached"),
    _m("abandoned_recovered", "queues", "count", "Avbrutna, svar inom 24 h", "Abandoned, answered within 24 h"),
)
MAIL = (
    _m("received", "mailboxes", "count", "Inkomna ärenden", "Cases received"),
    _m("answered", "mailboxes", "count", "Besvarade", "Answered"),
    _m("within_target", "mailboxes", "count", "Besvarade inom ledtid", "Answered within lead time"),
    _m("breached", "mailboxes", "count", "Över ledtid", "Past lead time"),
    _m("median_lead_seconds", "mailboxes", "hours", "Ledtid, median", "Median lead time"),
    _m(
        "answered_within_1_working_day",
        "mailboxes",
        "count",
        "Besvarade inom 1 arbetsdag (KKiK)",
        "Answered within 1 working day (KKiK)",
    ),
    _m("closed_without_reply", "mailboxes", "count", "Avslutade utan svar", "Closed without reply"),
    _m("open_at_end", "mailboxes", "count", "Öppna vid periodens slut", "Open at the end"),
    _m("priority_received", "mailboxes", "count", "Prioriterade ärenden", "Priority cases"),
    _m("priority_within_target", "mailboxes", "count", "Prioriterade inom ledtid", "Priority within lead time"),
)
# The measures the views (per day, hour, month) hold: those of one queue over a bucket.
PHONE_VIEW_KEYS = frozenset(
    {
        "offered", "answered", "abandoned", "short_abandoned", "callbacks", "flowed_out", "out_of_hours",
        "answer_rate", "service_level", "asa_seconds", "max_wait_seconds", "wait_p90_seconds",
    }
)  # fmt: skip


def phone_measures(agreements: Agreements, queue: str, view: str = "month") -> list[Measure]:
    """The queue's measures, the extra service levels beside service_level, labelled with their
    thresholds (`Servicenivå ≤ 60 s`, then `≤ 20 s`, `≤ 120 s`)."""
    q = agreements.queues[queue]
    out: list[Measure] = []
    for m in PHONE:
        if view != "month" and m.key not in PHONE_VIEW_KEYS:
            continue
        if m.key == "service_level":
            extra = [(f"service_levels.{level_key(x)}", x) for x in q.extra_service_levels]
            for key, seconds in [("service_level", q.service_level_seconds), *extra]:
                out.append(_m(key, "queues", "ratio", f"{m.sv} {limit(seconds)}", f"{m.en} {limit(seconds)}"))
        else:
            out.append(m)
    return out


def limit(seconds: float) -> str:
    """A service-level threshold as every format writes it: `≤ 60 s`, `≤ 7.5 s`."""
    return f"≤ {level_key(seconds)} s"


def limit_of(agreements: Agreements, queue: str, key: str) -> str:
    """The threshold of a queue's service-level measure (`service_level` or `service_levels.X`)."""
    seconds = agreements.queues[queue].service_level_seconds if key == "service_level" else float(key.split(".", 1)[1])
    return limit(seconds)


_GENERIC = {(m.channel, m.key): m for m in (*PHONE, *MAIL)}


def generic(channel: Channel, key: str) -> Measure:
    """A measure with the label every process shares (`Servicenivå`, without a queue's threshold):
    the head of a column over processes whose thresholds differ."""
    return _GENERIC[(channel, key)]


def ids(agreements: Agreements, channel: Channel) -> list[str]:
    """The ids of a channel's processes: the queues, or the mailboxes, in the agreements' order."""
    return list(agreements.queues if channel == "queues" else agreements.mailboxes)


def mail_measures() -> list[Measure]:
    return list(MAIL)


def measures(agreements: Agreements, channel: Channel, process: str, view: str = "month") -> list[Measure]:
    return phone_measures(agreements, process, view) if channel == "queues" else mail_measures()


def value_of(entry: dict[str, Any], key: str) -> Any:
    """A measure's value in a report entry (`service_levels.20` reads entry["service_levels"]["20"])."""
    if key.startswith("service_levels."):
        return entry.get("service_levels", {}).get(key.split(".", 1)[1])
    return entry.get(key)


# -- targets: what was promised, and whether it was kept ----------------------------------------


@dataclass(frozen=True)
class Target:
    value: float
    unit: Unit
    at_least: bool  # met when the value is >= the target (else when it is <=)

    def met(self, value: float | None) -> bool | None:
        """True kept, False broken, None no data (a null ratio judges nothing)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return value >= self.value if self.at_least else value <= self.value


def target(agreements: Agreements, channel: Channel, process: str, key: str) -> Target | None:
    """The promise a measure is judged against: a queue's service-level and answer-rate targets;
    a mailbox promises every case answered within its lead time, so its target is no case past it
    (`breached` 0). The median lead time is shown beside the lead-time target but not judged: the
    promise is per case. Other measures have no target."""
    if channel == "queues":
        q = agreements.queues[process]
        if key == "service_level":
            return Target(q.service_level_target, "ratio", at_least=True)
        if key == "answer_rate":
            return Target(q.answer_rate_target, "ratio", at_least=True)
        return None
    if key == "breached":
        return Target(0, "count", at_least=False)
    return None


def met(agreements: Agreements, channel: Channel, process: str, key: str, values: dict[str, Any] | None) -> bool | None:
    """Whether the promise of measure `key` was kept by a process in a period (`values`: its
    measures there). None when there is nothing to judge: no target, no data, or a mailbox that
    received no case (no case past its lead time is no kept promise when no mail came in: the
    wrong warehouse would otherwise read as a month of ✓)."""
    t = target(agreements, channel, process, key)
    if t is None or values is None or (channel == "mailboxes" and not values.get("received")):
        return None
    return t.met(value_of(values, key))


def reference(agreements: Agreements, channel: Channel, process: str, key: str) -> Target | None:
    """A value shown beside a measure that is not judged: the lead-time target beside the median."""
    if channel == "mailboxes" and key == "median_lead_seconds":
        return Target(agreements.mailboxes[process].response_target_seconds, "hours", at_least=False)
    return None


MARK = {True: "✓", False: "✗", None: ""}


# -- names, periods and the report's rows --------------------------------------------------------


def process_name(agreements: Agreements, channel: Channel, process: str) -> str:
    return agreements.queues[process].name if channel == "queues" else agreements.mailboxes[process].name


def processes(agreements: Agreements) -> list[tuple[str, str]]:
    """Every process (id, display name): the queues, then the mailboxes without a queue of their
    id. A queue and a mailbox of one id are one process (its phone and its mail)."""
    out = [(q.id, q.name) for q in agreements.queues.values()]
    out += [(m.id, m.name) for m in agreements.mailboxes.values() if m.id not in agreements.queues]
    return out


_WEEKDAYS = {
    "sv": ("mån", "tis", "ons", "tors", "fre", "lör", "sön"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
_MONTHS = {
    "sv": ("jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec"),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}


def period_label(view: str, period: str, lang: Lang) -> str:
    """`2026-05-04` -> "mån 4 maj"; hour `08` -> "08–09"; month `2026-05` -> "maj 2026"."""
    if view == "days":
        d = date.fromisoformat(period)
        return f"{_WEEKDAYS[lang][d.weekday()]} {d.day} {_MONTHS[lang][d.month - 1]}"
    if view == "hours":
        h = int(period)
        return f"{h:02d}–{(h + 1) % 24:02d}"
    y, m = period.split("-")
    return f"{_MONTHS[lang][int(m) - 1]} {y}"


def periods(report: dict[str, Any], view: str) -> list[str]:
    """Every period of a view, in order, with data or not: the month's days, the 24 hours, the
    13 months."""
    if view == "month":
        return [report["month"]]
    if view == "days":
        first, last = month_days(report["month"])
        return [date.fromordinal(n).isoformat() for n in range(first.toordinal(), last.toordinal() + 1)]
    if view == "hours":
        return [f"{h:02d}" for h in range(24)]
    return list(report["views"]["months"]["months"])


def entry(report: dict[str, Any], channel: Channel, process: str, view: str, period: str) -> dict[str, Any] | None:
    """The measures of one process in one period; None when the period had no contact or case."""
    holder: dict[str, Any] = report[channel] if view == "month" else report["views"][view][channel].get(process, {})
    found: dict[str, Any] | None = holder.get(process if view == "month" else period)
    return found


@dataclass(frozen=True)
class Row:
    """One number of the report: a process's measure in a period, beside its target."""

    channel: Channel
    process: str
    process_name: str
    view: str  # month | days | hours | months
    period: str  # 2026-05 | 2026-05-04 | 08 (local hour of the day) | 2025-06
    measure: str  # the JSON key (service_levels.20 for an extra threshold)
    label: str
    unit: Unit
    value: float | int | None
    target: float | None
    met: bool | None


def rows(report: dict[str, Any], agreements: Agreements, lang: Lang = "sv") -> Iterator[Row]:
    """Every number of the report, tidy: the month, then each view's periods that had data."""
    for view in VIEWS:
        for channel in ("queues", "mailboxes"):
            for process in ids(agreements, channel):
                name = process_name(agreements, channel, process)
                for period in periods(report, view):
                    values = entry(report, channel, process, view, period)
                    if values is None:
                        continue
                    for m in measures(agreements, channel, process, view):
                        t = target(agreements, channel, process, m.key)
                        yield Row(
                            channel, process, name, view, period, m.key, m.label(lang), m.unit,
                            value_of(values, m.key), t.value if t else None,
                            met(agreements, channel, process, m.key, values),
                        )  # fmt: skip


# -- writing a value -----------------------------------------------------------------------------


def fmt(value: float | int | None, unit: Unit, lang: Lang = "sv") -> str:
    """A value as a person reads it: `1 284`, `84,7 %`, `2:19` (m:ss), `1,8 h`; `–` for no data."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    comma = lang == "sv"
    if unit == "count":
        text = f"{value:,.0f}"
        return text.replace(",", "\u00a0") if comma else text
    if unit == "ratio":
        text = f"{value * 100:.1f}"
        return f"{text.replace('.', ',')}\u00a0%" if comma else f"{text}%"
    if unit == "seconds":
        total = round(value)
        h, rest = divmod(total, 3600)
        m, s = divmod(rest, 60)
        return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
    text = f"{value / 3600:.1f}"
    return f"{text.replace('.', ',') if comma else text}\u00a0h"


def local_time(utc_text: str, agreements: Agreements) -> str:
    """`2026-05-31T22:00:00Z` -> "2026-06-01 00:00" (the agreements' time zone)."""
    t = datetime.fromisoformat(utc_text.replace("Z", "+00:00")).astimezone(agreements.timezone)
    return t.strftime("%Y-%m-%d %H:%M")


# -- words ---------------------------------------------------------------------------------------

TEXT: dict[str, dict[Lang, str]] = {
    "title": {"sv": "Tillgänglighet {month}", "en": "Availability {month}"},
    "phone": {"sv": "Telefoni", "en": "Phone queues"},
    "mail": {"sv": "Funktionsbrevlådor", "en": "Function mailboxes"},
    "summary": {"sv": "Sammanfattning", "en": "Summary"},
    "days": {"sv": "Per dag", "en": "Per day"},
    "hours": {"sv": "Per timme", "en": "Per hour of day"},
    "months": {"sv": "13 månader", "en": "13 months"},
    "definitions": {"sv": "Definitioner", "en": "Definitions"},
    "process": {"sv": "Process", "en": "Process"},
    "period": {"sv": "Period", "en": "Period"},
    "measure": {"sv": "Mått", "en": "Measure"},
    "value": {"sv": "Värde", "en": "Value"},
    "target": {"sv": "Mål", "en": "Target"},
    "met": {"sv": "Uppfyllt", "en": "Met"},
    "met_yes": {"sv": "uppfyllt", "en": "met"},
    "met_no": {"sv": "ej uppfyllt", "en": "missed"},
    "no_data": {"sv": "inga data", "en": "no data"},
    "evaluated": {
        "sv": "Öppna ärenden bedömda {time} (lokal tid). Servicenivå och svarsfrekvens räknas utan korta "
        "avbrott och återuppringningar; ledtider räknas i öppettid.",
        "en": "Open cases judged at {time} (local time). Service level and answer rate exclude short abandons "
        "and callback requests; lead times count opening hours only.",
    },
    "no_events": {
        "sv": "Inga händelser för {month}: varken samtal eller ärenden finns i lagret för månaden. Nollorna nedan "
        "betyder att data saknas, inte att det var lugnt. Kontrollera lagret (--warehouse) och månaden.",
        "en": "No events for {month}: the warehouse holds no call or mail case of the month. The zeros below mean "
        "missing data, not a quiet month. Check the warehouse (--warehouse) and the month.",
    },
    "incomplete_load": {
        "sv": "En inläsning som startade {started} blev inte klar ({files}); siffrorna kan vara ofullständiga. "
        "Kör `availability process` igen med de filerna (en avbruten `rederive` körs om likadant).",
        "en": "A load started {started} did not finish ({files}); these numbers may be partial. Run "
        "`availability process` again over those files (an interrupted `rederive`: run it again).",
    },
    "conflicts": {
        "sv": "{count} händelser delade källa och id med en annan med annat innehåll (en källa som bryter "
        "kontraktet); en version av varje behölls.",
        "en": "{count} events shared a source and id with another of different content (a source breaking the "
        "contract); one version of each was kept.",
    },
    "agreements_changed": {
        "sv": "Månadens fakta härleddes med andra serviceavtal än dessa: {changes}. De måtten visar de gamla "
        "reglerna. Härled månaden igen ur lagrets händelser med dessa avtal: availability rederive --month {month} "
        "--agreements {source}.",
        "en": "The month's facts were derived with other service agreements than these: {changes}. Those measures "
        "follow the old rules. Derive the month again from the stored events with these agreements: availability "
        "rederive --month {month} --agreements {source}.",
    },
    "mark_legend": {
        "sv": "✓ uppfyllt, ✗ ej uppfyllt, – inga data",
        "en": "✓ met, ✗ missed, – no data",
    },
}


def text(key: str, lang: Lang, **values: Any) -> str:
    return TEXT[key][lang].format(**values)


def notices(report: dict[str, Any], agreements: Agreements, lang: Lang = "sv") -> list[str]:
    """What a reader must know before trusting the numbers, one sentence each (banners in the
    human formats, lines on the terminal): an empty month, unfinished loads, conflicting
    duplicates, facts derived with other agreements."""
    out = []
    if report.get("no_events"):
        out.append(text("no_events", lang, month=report["month"]))
    for load in report.get("incomplete_loads", []):
        started = local_time(load["started_at"], agreements)
        out.append(text("incomplete_load", lang, started=started, files=", ".join(load["files"])))
    if report.get("conflicting_duplicates"):
        out.append(text("conflicts", lang, count=report["conflicting_duplicates"]))
    changed = report.get("agreements_changed") or []
    if changed:
        parts = []
        for change in changed:
            channel, process = change["channel"], change["process"]
            named = " · ".join(
                generic(channel, k).label(lang) if (channel, k) in _GENERIC else GENERIC.get(k, {}).get(lang, k)
                for k in change["measures"]
            )
            setting = SETTINGS.get(change["setting"], {}).get(lang, change["setting"])
            months = ", ".join(period_label("months", m, lang) for m in change.get("months", []))
            name = process_name(agreements, channel, process) if process in ids(agreements, channel) else process
            where = text("phone" if channel == "queues" else "mail", lang).lower()
            parts.append(f"{name} ({where}), {setting}: {named} ({months})")
        changes = "; ".join(parts)
        out.append(text("agreements_changed", lang, changes=changes, source=agreements.source, month=report["month"]))
    return out


# The settings named in agreements_changed (dashboards/provenance.py), as a reader says them.
SETTINGS: dict[str, dict[Lang, str]] = {
    "calendar": {"sv": "kalendern", "en": "the calendar"},
    "service_level_seconds": {"sv": "servicenivåns gräns", "en": "the service-level threshold"},
    "short_abandon_seconds": {"sv": "gränsen för korta avbrott", "en": "the short-abandon limit"},
    "extra_service_levels": {"sv": "de extra servicenivåerna", "en": "the extra service levels"},
    "response_target_seconds": {"sv": "ledtidsmålet", "en": "the lead-time target"},
    "priority_response_target_seconds": {"sv": "ledtidsmålet för prioriterade", "en": "the priority lead-time target"},
    "timezone": {"sv": "tidszonen", "en": "the time zone"},
    "rules": {"sv": "en äldre version av härledningsreglerna", "en": "an older version of the derivation rules"},
    "agreements": {"sv": "avtal som inte finns sparade", "en": "agreements that were not recorded"},
}
# Measures without a label of their own (the extra service levels as a group).
GENERIC: dict[str, dict[Lang, str]] = {"service_levels": {"sv": "Extra servicenivåer", "en": "Extra service levels"}}


def headline(report: dict[str, Any], agreements: Agreements, lang: Lang = "sv") -> list[str]:
    """One line per process: the promises and whether they were kept (the mail's body)."""
    lines = []
    for process, name in processes(agreements):
        parts = []
        if process in agreements.queues:
            q = report["queues"][process]
            for key in ("service_level", "answer_rate"):
                t = target(agreements, "queues", process, key)
                assert t is not None
                label = phone_label(agreements, process, key, lang)
                mark = MARK[met(agreements, "queues", process, key, q)]
                parts.append(f"{label} {fmt(q[key], 'ratio', lang)} ({text('target', lang).lower()} "
                             f"{fmt(t.value, 'ratio', lang)}) {mark}".rstrip())  # fmt: skip
        if process in agreements.mailboxes:
            m = report["mailboxes"][process]
            mark = MARK[met(agreements, "mailboxes", process, "breached", m)]
            word = {"sv": "ärenden, varav över ledtid", "en": "cases, past lead time"}[lang]
            parts.append(f"{fmt(m['received'], 'count', lang)} {word} {fmt(m['breached'], 'count', lang)} {mark}")
        lines.append(f"{name}: " + "; ".join(parts))
    return lines


def phone_label(agreements: Agreements, queue: str, key: str, lang: Lang) -> str:
    return next(m.label(lang) for m in phone_measures(agreements, queue) if m.key == key)


# The definitions of dashboards/report.py's DEFINITIONS, in Swedish (same keys).
DEFINITIONS_SV = {
    "contact": "börjar vid call.queued; räknas en gång, i den sista kö den väntade i (ACE:s regel); ett samtal som "
    "aldrig köade är ingen kontakt; en ny köning efter återuppringning eller utflöde är en ny kontakt",
    "period": "en kontakt eller ett ärende hör till den lokala månad (avtalens tidszon) då den först köade eller "
    "öppnades",
    "answer_rate": "besvarade / (erbjudna − korta avbrott − återuppringningar)",
    "service_level": "besvarade med väntetid ≤ servicenivåns sekunder / (erbjudna − korta avbrott − återuppringningar)",
    "service_levels": "för varje extra tröskel X i kön: besvarade med väntetid ≤ X / samma bas",
    "flowed_out": "erbjudna kontakter som växeln förde ut ur kön obesvarade (call.exited); ingår i basen",
    "wait_p90_seconds": "90:e percentilen av besvarade väntetider (närmaste rang)",
    "callers": "unika kända uppringare (nyckelad hash av numret) bland erbjudna kontakter",
    "callers_reached": "de uppringare som fick svar på en kontakt som köade under månaden, i valfri kö",
    "abandoned_recovered": "avbrutna kontakter (ej korta) vars uppringare fick svar, i valfri kö, inom 24 h efter "
    "avbrottet",
    "lead_time": "öppettid (brevlådans kalender) från att ärendet öppnades till första svaret",
    "answered_within_1_working_day": "besvarade före 24:00 första arbetsdagen efter den dag ärendet öppnades (KKiK)",
    "internal_transfers": "kontakter som köade igen efter ett svar; redovisas separat, ingår inte i måtten",
    "evaluation_time": "öppna ärenden bedöms vid månadens slut, eller nu om det är tidigare",
    "conflicting_duplicates": "händelser med samma källa och id som en annan men annat innehåll (inom ett samtal "
    "eller en tråd), räknade i månaden för den version som behölls och används",
    "views": "dag och timme: månadens kontakter och ärenden efter den lokala dag, eller timme på dygnet, då de först "
    "köade eller öppnades; månader: de senaste 13 lokala månaderna, varje månads öppna ärenden bedömda vid dess slut",
    "met": "servicenivå och svarsfrekvens är uppfyllda vid eller över köns mål; en brevlåda lovar att varje ärende "
    "besvaras inom ledtiden, så den är uppfylld när inget ärende gick över; en kvot utan bas bedöms inte",
}


def definitions(report: dict[str, Any], lang: Lang) -> dict[str, str]:
    """The definitions the report used, in the reader's language."""
    used: dict[str, str] = report.get("definitions", {})
    return {k: DEFINITIONS_SV.get(k, v) for k, v in used.items()} if lang == "sv" else dict(used)
