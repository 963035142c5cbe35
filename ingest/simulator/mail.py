"""The mail side of the simulator (ingest/simulator/traffic.py): one local day's mail cases."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from random import Random
from typing import Any

from ingest.simulator import profiles as P
from ingest.simulator.state import Out, Simulator, poisson
from schemas import events as E
from schemas.agreements import Mailbox
from schemas.events import Event


class MailDay:
    """The mail cases opened on one local day, each followed to its reply or close."""

    def __init__(self, sim: Simulator, day: date, out: Out, bounds: list[float]) -> None:
        self.sim, self.day, self.out, self.bounds = sim, day, out, bounds
        self.rng = Random(f"{sim.seed}/{day.isoformat()}/mail")
        self.ymd, self.messages = f"{day:%Y%m%d}", 0

    def run(self) -> None:
        sim, rng = self.sim, self.rng
        for mb in sim.agreements.mailboxes.values():
            prof = P.mailbox_profile(mb.id)
            n = sim.volume(prof.mails_per_year, P.WEEKDAY_MAIL, P.HOLIDAY_MAIL, self.day, mb.calendar_id, 1.0)
            for t in poisson(rng, self.bounds, P.MAIL_HOURS, n):
                sender = prof.sender.format(
                    n=sim.pick(rng, round(prof.senders * sim.scale) or 1) + 1
                    if rng.random() < P.REPEAT_SENDER_SHARE
                    else rng.randrange(10_000, 1_000_000)
                )
                template = rng.choice(P.PRIORITY_SUBJECTS if rng.random() < prof.priority_share else prof.subjects)
                subject = template.format(inv=rng.randrange(10**5, 10**8), month=P.MONTHS_SV[self.day.month - 1])
                self._case(mb, t, sender, subject, None, 0)

    def _message_id(self) -> str:
        self.messages += 1
        return f"<{self.rng.getrandbits(40):010x}.{self.ymd}.{self.messages}@example.se>"

    def _emit(self, t: float, kind: Callable[..., Event], data: Any, mb: Mailbox, thread: str) -> None:
        self.out.emit(t, kind, data, f"imap/{mb.id}", f"{mb.id}/{thread}")

    def _flag(self, share: float) -> list[str]:
        """The source's categories: a priority flag in the letter case the source writes it, or none."""
        return [self.rng.choice(P.PRIORITY_CATEGORY_FORMS)] if self.rng.random() < share else []

    def _received(
        self, t: float, mb: Mailbox, thread: str | None, sender: str, subject: str, categories: list[str]
    ) -> tuple[str, str]:
        message = self._message_id()
        thread = thread or message  # a new thread is named by its first message
        data = E.MailReceivedData(
            mailbox=mb.id, message_id=message, thread_id=thread, sender=sender, subject=subject, categories=categories
        )
        self._emit(t, E.MailReceived, data, mb, thread)
        return message, thread

    def _case(self, mb: Mailbox, t: float, sender: str, subject: str, thread: str | None, depth: int) -> None:
        rng = self.rng
        flag = self._flag(P.PRIORITY_CATEGORY_SHARE)
        last, thread = self._received(t, mb, thread, sender, subject, flag)
        priority = bool(flag) or self.sim.priority[mb.id](subject)
        u, reason = rng.random(), None
        for name, share in P.CLOSE_SHARES:
            if u < share:
                reason = name
                break
            u -= share
        if reason == "spam":
            lead = rng.lognormvariate(math.log(P.SPAM_MEDIAN_S), 0.8)
        elif priority:
            lead = rng.lognormvariate(
                math.log(P.PRIORITY_MEDIAN * mb.priority_response_target_seconds), P.PRIORITY_SIGMA
            )
        else:
            lead = rng.lognormvariate(math.log(P.REPLY_MEDIAN * mb.response_target_seconds), P.REPLY_SIGMA)
        done = self.sim.hours[mb.calendar_id].add(t, max(P.MIN_LEAD_S, lead))
        if done is None:
            return
        if reason is not None:
            self._emit(done, E.MailClosed, E.MailClosedData(mailbox=mb.id, thread_id=thread, reason=reason), mb, thread)
            return
        if rng.random() < P.CHASE_SHARE:  # the sender writes again before the reply: same case
            chase = t + rng.lognormvariate(math.log(P.CHASE_MEDIAN_S), 0.8)
            if chase < done:
                flag = self._flag(P.CHASE_CATEGORY_SHARE)
                last, _ = self._received(chase, mb, thread, sender, "Påminnelse: " + subject, flag)
        data = E.MailRepliedData(mailbox=mb.id, message_id=self._message_id(), thread_id=thread, in_reply_to=last)
        self._emit(done, E.MailReplied, data, mb, thread)
        if depth < P.MAX_FOLLOWUPS and rng.random() < P.FOLLOWUP_SHARE:  # answers the reply: a new case
            again = done + rng.lognormvariate(math.log(P.FOLLOWUP_MEDIAN_S), 1.0)
            self._case(
                mb, again, sender, subject if subject.startswith("SV: ") else "SV: " + subject, thread, depth + 1
            )
