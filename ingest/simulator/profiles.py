"""Volume and behaviour tables for the traffic simulator (ingest/simulator/traffic.py).

Every number here is an assumption; docs/simulator.md gives its source or rationale.
Queues and mailboxes that are not listed (other agreements files) get DEFAULT_QUEUE and
DEFAULT_MAILBOX. All volumes are at scale 1 (one shared-service centre).
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import CloseReason

# -- the centre's yearly invoice volumes and the derived contact volumes --------------------

SUPPLIER_INVOICES_PER_YEAR = 1_060_000
CUSTOMER_INVOICES_PER_YEAR = 1_545_000
WORKING_DAYS_PER_YEAR = 248  # weekdays minus public holidays and the closed "afton" days
MONTH_START_WORKING_DAYS = 5  # the month-start peak lasts this many working days
WORKING_DAYS_PER_MONTH = 21

ENTRANCE = "08-508 330 00"  # the one dialled number; the DTMF menu chooses the queue


@dataclass(frozen=True)
class QueueProfile:
    calls_per_year: float
    talk_mean_s: float = 300.0
    month_start: float = 1.0  # arrival multiplier on the first MONTH_START_WORKING_DAYS
    callback: bool = False  # callers are offered a callback after CALLBACK_AFTER_S
    partners: tuple[str, ...] = ()  # smaller queues some of this queue's agents also serve
    transfer_to: tuple[str, ...] = ()  # where transfers (before or after answer) go
    timeout_s: float = 600.0  # queue time-out: a caller still waiting this long after queuing goes to voicemail


_S, _C = SUPPLIER_INVOICES_PER_YEAR, CUSTOMER_INVOICES_PER_YEAR
QUEUES: dict[str, QueueProfile] = {
    "leverantorsreskontra": QueueProfile(0.010 * _S, 270, 1.5, True, ("kassa_bank",), ("kassa_bank", "redovisning")),
    "kundreskontra": QueueProfile(
        0.012 * _C, 300, 1.6, True, ("avgifter", "hyresadministration"), ("avgifter", "hyresadministration")
    ),
    "avgifter": QueueProfile(0.0045 * _C, 330, 2.0, True, (), ("kundreskontra",)),
    "hyresadministration": QueueProfile(3000, 300, 1.3, False, (), ("kundreskontra",)),
    # the internal queues (callers are the municipality's own staff): voicemail after 5 minutes
    "redovisning": QueueProfile(2500, 360, 1.0, False, ("anlaggning",), ("anlaggning", "kassa_bank"), 300),
    "kassa_bank": QueueProfile(2000, 240, 1.0, False, (), ("leverantorsreskontra",), 300),
    "systemforvaltning": QueueProfile(3500, 330, 1.0, False, ("tid_projekt",), ("tid_projekt",), 300),
    "tid_projekt": QueueProfile(1500, 270, 1.0, False, (), ("systemforvaltning",), 300),
    "anlaggning": QueueProfile(800, 360, 1.0, False, (), ("redovisning",), 300),
}
DEFAULT_QUEUE = QueueProfile(2000)

# -- arrival shape -----------------------------------------------------------------------------

# Relative arrivals per local hour (0..23) on a working day. Phone: morning peak 9-10, an
# after-lunch peak 13-14; the weights at 8 (08:00-08:30), 12 (lunch closure) and 16+ are
# the out-of-hours callers of a 08:30-16:00 queue.
CALL_HOURS = (0.02, 0.02, 0.02, 0.02, 0.02, 0.03, 0.1, 0.6, 2.4, 10.0, 9.5, 7.5,
              1.2, 9.0, 7.5, 5.5, 0.8, 0.3, 0.2, 0.15, 0.1, 0.06, 0.04, 0.03)  # fmt: skip
MAIL_HOURS = (0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 1.0, 5.0, 7.0, 7.0, 6.0,
              4.0, 6.0, 6.0, 5.0, 3.0, 1.5, 1.0, 1.0, 1.0, 0.8, 0.5, 0.3)  # fmt: skip
# Day level relative to an average working day (Mon..Sun); Monday is the busiest.
WEEKDAY_CALLS = (1.25, 1.05, 0.97, 0.93, 0.80, 0.04, 0.03)
WEEKDAY_MAIL = (1.30, 1.05, 0.95, 0.90, 0.80, 0.12, 0.10)
# A weekday on which the calendar is closed (public holiday, julafton...): out-of-hours demand.
HOLIDAY_CALLS = 0.08
HOLIDAY_MAIL = 0.15
# Seasonality by month (Jan..Dec): summer holidays in July, a quieter December.
MONTH_FACTOR = (1.10, 1.05, 1.05, 1.00, 1.00, 0.90, 0.55, 0.95, 1.05, 1.05, 1.00, 0.85)

# -- callers --------------------------------------------------------------------------------------

MENU_SECONDS = (6.0, 25.0)  # offered -> DTMF choice
MENU_HANGUP = 0.03  # hang up in the menu: only call.offered + call.ended
CALLER_POOL = 400  # frequent callers at scale 1 (Zipf weights), the source of repeat callers
REPEAT_CALLER_SHARE = 0.30  # share of calls from the frequent-caller pool
PATIENCE_MEAN_S = 150.0  # lognormal mean of how long a caller waits
PATIENCE_SIGMA = 0.9
PATIENCE_CAP_S = 2400.0
QUICK_ABANDON_SHARE = 0.05  # hang up within 5 s of queuing
CLOSED_HANGUP = 0.6  # queued while closed: hang up after the closed message (4-30 s)
ABANDON_EVENT_SHARE = 0.75  # abandons sent as call.abandoned + call.ended (else only call.ended)
REDIAL_SHARE = 0.30  # an abandoning caller calls again the same day
REDIAL_MEDIAN_S = 600.0
CALLBACK_AFTER_S = 90.0
CALLBACK_ACCEPT = 0.35  # of the callers still waiting at CALLBACK_AFTER_S
CALLBACK_REQUEUE_SHARE = 0.10  # after booking the callback, back to the menu for another matter: queued again
MENU_TRANSFER_SHARE = 0.02  # chose the wrong queue: transferred to another one at once
MENU_TRANSFER_S = (2.0, 8.0)
OVERFLOW_SHARE = 0.10  # transferred to a partner queue if still waiting after OVERFLOW_AFTER_S
OVERFLOW_AFTER_S = (20.0, 60.0)
INTERNAL_TRANSFER_SHARE = 0.03  # after the talk, put into another queue (same call_id)
INTERNAL_PATIENCE = 1.5  # a transferred caller waits longer
HANDOFF_SHARE = 0.01  # of answered calls: the agent hands the call on at once (answer + re-queue in one second)
HANDOFF_WRAP_S = (3.0, 10.0)
ROUTED_SHARE = 0.02  # of calls queued while open: the IVR's second step moves the call on at the same instant
ROUTED_CHAIN_SHARE = 0.6  # of those, moved on once more (queued K, K->A, A->D in one second) where A has a target
REDIAL_NEXT_DAY_SHARE = 0.25  # of redials: the caller tries again the next open day instead
REDIAL_NEXT_MEDIAN_S = 2700.0  # a next-day redial (or one due after closing): median 45 min after opening
REDIAL_REOPEN_S = 900.0  # a redial due in a closure (lunch) comes within 15 min after it reopens
DIRECT_SHARE = 0.02  # calls to an agent's direct number: offered, no DTMF menu, no queue
DIRECT_ENTRANCE = "direktval"  # the entrance name of the switch's direct-dial calls
DIRECT_NO_ANSWER_S = (15.0, 40.0)  # the agent is not ready: it rings out and the caller hangs up

# -- flow-outs (call.exited: the switch routes a waiting caller out of the queue unanswered) ---

EXIT_KEY_SHARE = 0.08  # callers who press the announced exit key if still waiting at EXIT_KEY_AFTER_S
EXIT_KEY_AFTER_S = (30.0, 120.0)
EXIT_TO_QUEUE_SHARE = 0.4  # the exit key's destination is a partner queue (exited + queued in one second)
QUEUE_FULL_MIN = 5  # queue_full: at most max(QUEUE_FULL_MIN, QUEUE_FULL_PER_AGENT x agents serving it) waiting
QUEUE_FULL_PER_AGENT = 0.6
VOICEMAIL_S = (5.0, 90.0)  # flowed out to voicemail: the caller leaves a message (or not) and hangs up
REDIAL_AFTER_EXIT_SHARE = 0.25  # flowed out to voicemail, calls again anyway
MEETING_S = 30 * 60.0  # weekly team meeting after opening: the team logs in late, the queue stays open
MEETING_WEEKDAYS = (1, 3, 0, 2, 4)  # team i (queues linked by shared agents) meets on this weekday

# -- agents ---------------------------------------------------------------------------------------

RING_S = (2.0, 6.0)  # ringing: part of the wait
AUTO_ANSWER_EVERY = 4  # every 4th agent (roster index 1, 5, 9 ...) has auto-answer: connected at once
AUTO_ANSWER_RING_S = (0.0, 1.0)
TALK_SIGMA = 0.6  # lognormal talk time around the queue's talk_mean_s
TALK_MIN_S = 20.0
WRAP_S = (30.0, 60.0)
PEAK_COVER = 0.7  # month-start extra staff cover this share of the month-start extra load
SHARED_SHARE = 0.4  # share of a queue's agents who also serve one of its partner queues
BACKOFFICE_SHARE = 0.10  # after a wrap-up, not_ready for back-office work a while
BACKOFFICE_MEDIAN_S = 300.0
ABSENCE_BY_MONTH = (0.06, 0.06, 0.06, 0.06, 0.06, 0.12, 0.40, 0.15, 0.06, 0.06, 0.06, 0.10)
STAND_IN_SHARE = 0.75  # all of a queue's agents absent: a colleague stands in (else no one logs in all day)
LATE_S = 90.0  # agents become ready up to this long after opening or a break
COFFEE_BREAKS = ((9 * 60 + 45, 15), (14 * 60 + 15, 15))  # local minute, minutes; staggered
LUNCH = (11 * 60, 45)  # only for calendars without a lunch closure; staggered by 30 min
STAGGER_MIN = 15

# -- mailboxes ------------------------------------------------------------------------------------

MONTHS_SV = ("januari", "februari", "mars", "april", "maj", "juni",
             "juli", "augusti", "september", "oktober", "november", "december")  # fmt: skip

# Subjects with a default priority keyword (anstånd, makuler, avbetalning) in several spellings.
PRIORITY_SUBJECTS = (
    "Anstånd med betalning",
    "ansökan om anstand",
    "Begäran om anstånd, faktura {inv}",
    "Makulering av faktura {inv}",
    "faktura makuleras",
    "Makulera faktura {inv}",
    "Avbetalningsplan önskas",
    "AVBETALNING",
    "Önskar avbetalningsplan för faktura {inv}",
)


@dataclass(frozen=True)
class MailboxProfile:
    mails_per_year: float
    priority_share: float
    sender: str  # address template, {n} = sender number
    senders: int  # repeat-sender pool at scale 1
    subjects: tuple[str, ...]


MAILBOXES: dict[str, MailboxProfile] = {
    "leverantorsreskontra": MailboxProfile(0.014 * _S, 0.04, "reskontra@leverantor{n}.example.com", 600, (
        "Fråga om betalning av faktura {inv}", "Påminnelse: obetald faktura {inv}", "Ändrade bankuppgifter",
        "Kreditfaktura {inv}", "Faktura {inv} - felaktig referens", "Var är vår betalning?",
        "E-faktura har inte kommit fram", "Dröjsmålsränta faktura {inv}", "Fråga om referenskod")),
    "kundreskontra": MailboxProfile(0.009 * _C, 0.10, "kund{n}@example.net", 800, (
        "Fråga om faktura {inv}", "Betalningspåminnelse faktura {inv}", "Har betalat men fått påminnelse",
        "Felaktig faktura {inv}", "Autogiro", "Återbetalning av dubbelbetalning", "Ärendet har gått till inkasso",
        "Ny fakturaadress", "OCR-nummer saknas", "Kopia på faktura {inv}", "Fråga om ränta på faktura {inv}",
        "Kreditering av faktura {inv}", "Faktura till fel person")),
    "avgifter": MailboxProfile(0.0035 * _C, 0.12, "vardnadshavare{n}@example.net", 500, (
        "Fråga om barnomsorgsavgift", "Inkomstuppgift för avgift", "Ändrad inkomst", "Faktura förskola {month}",
        "Uppsägning av plats och sista faktura", "Maxtaxa", "Syskonrabatt", "Fel avgift på fakturan",
        "Fritidshemsavgift {month}")),
    "hyresadministration": MailboxProfile(2500, 0.08, "hyresgast{n}@example.net", 200, (
        "Hyresavi {month}", "Fråga om hyresavi", "Lokalhyra - fakturafråga", "Indexuppräkning av hyra",
        "Uppsägning av kontrakt", "Hyresinbetalning")),
    "redovisning": MailboxProfile(3000, 0.0, "handlaggare{n}@forvaltning.example.org", 300, (
        "Fråga om kontering", "Periodisering", "Bokslut - fråga", "Momsfråga", "Rättelse av verifikation {inv}",
        "Internfakturering", "Kodsträng")),
    "kassa_bank": MailboxProfile(2000, 0.0, "handlaggare{n}@forvaltning.example.org", 300, (
        "Kontantkassa", "Bankkonto", "Insättning", "Swish", "Kortterminal", "Betalningsfil avvisad",
        "Avstämning bankkonto {month}")),
    "systemforvaltning": MailboxProfile(4000, 0.0, "anvandare{n}@forvaltning.example.org", 400, (
        "Behörighet i ekonomisystemet", "Inloggning fungerar inte", "Beställning av ny användare",
        "Fel i rapport", "Attestflöde", "Felmeddelande vid attest")),
    "tid_projekt": MailboxProfile(1800, 0.0, "projektledare{n}@forvaltning.example.org", 150, (
        "Tidrapport {month}", "Projektnummer saknas", "Ny aktivitet i projekt", "Stänga projekt",
        "Fel tid rapporterad")),
    "anlaggning": MailboxProfile(1000, 0.0, "handlaggare{n}@forvaltning.example.org", 100, (
        "Aktivering av anläggning", "Avskrivning", "Inventarie", "Utrangering", "Komponentavskrivning")),
}  # fmt: skip
DEFAULT_MAILBOX = MailboxProfile(2000, 0.05, "avsandare{n}@example.net", 200, ("Fråga", "Ärende", "Faktura {inv}"))

REPEAT_SENDER_SHARE = 0.40
CLOSE_SHARES: tuple[tuple[CloseReason, float], ...] = (
    ("spam", 0.03),
    ("forwarded", 0.06),
    ("handled", 0.04),
)  # the rest get a reply
REPLY_MEDIAN = 0.30  # median lead time as a share of response_target (sigma 1.0: ~88 % in target)
REPLY_SIGMA = 1.0
PRIORITY_MEDIAN = 0.20  # of priority_response_target (sigma 0.9: ~96 % in target)
PRIORITY_SIGMA = 0.9
SPAM_MEDIAN_S = 15 * 60.0
MIN_LEAD_S = 120.0
CHASE_SHARE = 0.12  # the sender writes again before the reply (same case)
CHASE_MEDIAN_S = 20 * 3600.0
PRIORITY_CATEGORY_SHARE = 0.02  # new messages flagged by the source: categories ["Priority"] or ["priority"]
CHASE_CATEGORY_SHARE = 0.10  # chasers flagged so (the case becomes a priority case mid-way)
PRIORITY_CATEGORY_FORMS = ("Priority", "Priority", "Priority", "priority")  # as Outlook/IMAP deliver them
FOLLOWUP_SHARE = 0.15  # the sender answers the reply (a new case in the same thread)
FOLLOWUP_MEDIAN_S = 24 * 3600.0
MAX_FOLLOWUPS = 2


# -- lookups ------------------------------------------------------------------------------------


def queue_profile(queue: str) -> QueueProfile:
    return QUEUES.get(queue, DEFAULT_QUEUE)


def mailbox_profile(mailbox: str) -> MailboxProfile:
    return MAILBOXES.get(mailbox, DEFAULT_MAILBOX)
