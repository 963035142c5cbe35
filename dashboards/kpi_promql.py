"""The live KPIs of spec/metrics.md in PromQL, each written once, over the stream worker's metrics
(docs/live-metrics.md).

The wall and the mailbox dashboard (dashboards/grafana/wall.py, mailbox.py) and the alert rules
(dashboards/alerting/rules.py) compose their expressions from these. Every series is aggregated
across workers as docs/live-metrics.md says (counts `sum`, ages and calendar values `max`):
`AGGREGATION` holds that once, and `per()` applies it.

Service level and answer rate: SL = answered_in_sl / (answered_in_sl + answered_late +
abandoned + flowed_out), answer rate = (answered_in_sl + answered_late) / the same base (offered − short
abandons − callbacks, as the monthly report). A queue with no contact of the numerator's
outcomes has 0 (not absent); a queue whose base is 0 has no value at all (shown as "–", never
0, and never compared with a target).
"""

from __future__ import annotations

# metric -> how its series from several workers are combined (docs/live-metrics.md)
AGGREGATION = {
    "availability_queue_open": "max",
    "availability_queue_waiting": "sum",
    "availability_queue_oldest_wait_seconds": "max",
    "availability_queue_agents": "sum",
    "availability_queue_contacts_total": "sum",
    "availability_queue_today_contacts": "sum",
    "availability_queue_service_level_target": "max",
    "availability_queue_answer_rate_target": "max",
    "availability_queue_service_level_seconds": "max",
    # The outlook (docs/forecasting.md) is shown and alerted on only where one worker reports the
    # queue (`one_worker`): with several, each sees a share of the calls and agents.
    "availability_queue_expected_service_level": "min",
    "availability_queue_expected_answer_rate": "min",
    "availability_queue_expected_contacts": "sum",
    "availability_queue_breach_expected_seconds": "min",
    "availability_queue_agents_needed": "max",
    "availability_mailbox_priority_breach_seconds": "min",
    "availability_mailbox_open": "max",
    "availability_mailbox_open_cases": "sum",
    "availability_mailbox_oldest_open_business_seconds": "max",
    "availability_mailbox_breached_cases": "sum",
    "availability_mailbox_breaching_within_hour": "sum",
    "availability_source_last_seen_timestamp_seconds": "max",
}

# The outcomes of availability_queue_contacts_total and availability_queue_today_contacts.
IN_SL = "answered_in_sl"
ANSWERED = "answered_in_sl|answered_late"
BASE = "answered_in_sl|answered_late|abandoned|flowed_out"  # offered − short abandons − callbacks

READY = 'state="ready"'  # availability_queue_agents: ready to answer
PRIORITY = 'priority="true"'  # the mailbox gauges: priority cases only


def selector(*matchers: str) -> str:
    """`{a, b}`, or nothing without matchers."""
    return "{" + ", ".join(matchers) + "}" if matchers else ""


def per(label: str | None, metric: str, *matchers: str) -> str:
    """The metric aggregated by `label` (None: over everything), its documented way."""
    series = f"{metric}{selector(*matchers)}"
    return f"{AGGREGATION[metric]} by ({label}) ({series})" if label else f"{AGGREGATION[metric]}({series})"


def contacts(outcomes: str, window: str | None, *matchers: str) -> str:
    """Contacts per queue with these outcomes: ended in the last `window`, or (None) first queued
    today, local time."""
    match = (*matchers, f'outcome=~"{outcomes}"')
    if window is None:
        return per("queue", "availability_queue_today_contacts", *match)
    metric = "availability_queue_contacts_total"
    return f"{AGGREGATION[metric]} by (queue) (increase({metric}{selector(*match)}[{window}]))"


def ratio(numerator: str, window: str | None, *matchers: str) -> str:
    """Contacts with the `numerator` outcomes / the base, per queue (see the module docstring)."""
    base = contacts(BASE, window, *matchers)
    return f"({contacts(numerator, window, *matchers)} or 0 * {base}) / ({base} > 0)"


def service_level(window: str | None, *matchers: str) -> str:
    """Answered within service_level_seconds / the base, over `window` or (None) today."""
    return ratio(IN_SL, window, *matchers)


def answer_rate(window: str | None, *matchers: str) -> str:
    """Answered / the base, over `window` or (None) today."""
    return ratio(ANSWERED, window, *matchers)


def one_worker(*matchers: str) -> str:
    """Per queue, 1 where exactly one worker reports it: the outlook needs all its calls and agents."""
    return f"count by (queue) (availability_queue_open{selector(*matchers)}) == 1"


def outlook(metric: str, *matchers: str) -> str:
    """An outlook metric per queue, only where one worker reports the queue."""
    return f"{per('queue', metric, *matchers)} and on (queue) {one_worker(*matchers)}"


def queue_open(*matchers: str) -> str:
    """1 per queue while its opening hours are open, 0 while closed."""
    return per("queue", "availability_queue_open", *matchers)


def mailbox_open(*matchers: str) -> str:
    return per("mailbox", "availability_mailbox_open", *matchers)
