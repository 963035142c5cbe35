"""A warehouse written before contract v2 keeps its calls (schemas/ddl/006_contract_v2.sql).

The earlier version stored one row per call in `call_facts`, the citizen's contact and its
internal transfers in arrays. Migration 006 turns each row into contacts (seq 1, then 2, 3, ... for
the internal transfers), drops `call_facts`, and the report reads them as before.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from importlib import resources

from dashboards.report import monthly_report
from stream_jobs.core.deriver import Deriver
from stream_jobs.warehouse import Warehouse, ddl_statements
from tests.conftest import ev

OLD_ROW = """
INSERT INTO call_facts
    (call_id, offered_at, entrance, caller_ref, queue, first_queued_at, outcome, queue_open, wait_seconds,
     short_abandon, in_service_level, agent, talk_seconds, transferred_from, ended_at,
     internal_queue, internal_queued_at, internal_outcome, internal_wait, events)
VALUES
    ('c1', '2026-04-14 08:00:00', 'e', 'x', 'avgifter', '2026-04-14 08:00:00', 'answered', true, 30, false, true,
     'a1', 100, ['kundreskontra', 'kundreskontra'], '2026-04-14 08:02:10',
     ['kundreskontra'], ['2026-04-14 08:01:00'], ['answered'], [20], 7),
    ('c2', NULL, '', '', '', NULL, '', false, NULL, false, false, '', NULL, [], NULL, [], [], [], [], 1),
    ('c3', NULL, '', '', 'kundreskontra', '2026-04-14 09:00:00', 'answered', true, 0, false, true, 'a1', NULL, [],
     NULL, [], [], [], [], 1)
"""


def test_the_calls_of_an_older_warehouse_become_contacts(chdb_dir, agreements):
    database = f"test_{uuid.uuid4().hex[:12]}"
    wh = Warehouse.open(chdb_dir, database=database)
    try:
        # Back to the schema of the version before: 006 and later undone, the old table filled.
        for table in ("call_contacts", "event_conflicts", "agreements_seen", "mail_cases", "queue_intervals"):
            wh.client.command(f"DROP TABLE {table}")
        wh.client.command("DROP TABLE mailbox_intervals")
        wh.client.command("DELETE FROM schema_migrations WHERE name >= '006'")
        for name in ("002_call_facts.sql", "003_mail_cases.sql"):
            ddl = (resources.files("schemas") / "ddl" / name).read_text(encoding="utf-8")
            for statement in ddl_statements(ddl):
                wh.client.command(statement)
        wh.client.command(OLD_ROW)
        # c3: v1 made a contact of an answer without call.queued (a direct call); v2 makes none.
        direct = ev(
            "call.answered", "2026-04-14T11:00:00+02:00", id="a3", call_id="c3", queue="kundreskontra", agent="a1"
        )
        wh.insert_events([direct])

        assert wh.migrate() == [
            "006_contract_v2.sql", "007_derived_with.sql", "008_source_rejects.sql", "009_facts_by_time.sql",
        ]  # fmt: skip
        rows = wh.records(
            "SELECT call_id, seq, internal, queue, outcome, wait_seconds, left_at, transferred_from, caller_ref,"
            " talk_seconds FROM call_contacts FINAL ORDER BY call_id, seq"
        )
        # c1: its contact (transferred_from made distinct, left_at = first queued + wait) and its
        # internal transfer; c2 never reached a queue: no contact; c3 as v1 derived it, until touched.
        assert [{k: (v.replace(tzinfo=UTC) if isinstance(v, datetime) else v) for k, v in r.items()} for r in rows[:-1]] == [
            {"call_id": "c1", "seq": 1, "internal": False, "queue": "avgifter", "outcome": "answered",
             "wait_seconds": 30.0, "left_at": datetime(2026, 4, 14, 8, 0, 30, tzinfo=UTC),
             "transferred_from": ["kundreskontra"], "caller_ref": "x", "talk_seconds": 100.0},
            {"call_id": "c1", "seq": 2, "internal": True, "queue": "kundreskontra", "outcome": "answered",
             "wait_seconds": 20.0, "left_at": datetime(2026, 4, 14, 8, 1, 20, tzinfo=UTC),
             "transferred_from": [], "caller_ref": "x", "talk_seconds": None},
        ]  # fmt: skip
        assert (rows[-1]["call_id"], rows[-1]["seq"]) == ("c3", 1)
        assert wh.query("EXISTS TABLE call_facts") == [(0,)]
        # Touched again (its call.ended arrives), c3 is derived under v2: no contact, so the row the
        # migration carried over is withdrawn (the Deriver asks the store which contact rows it holds).
        Deriver(wh, agreements).apply([ev("call.ended", "2026-04-14T11:05:00+02:00", id="e3", call_id="c3")])
        assert wh.query("SELECT count() FROM call_contacts FINAL WHERE call_id = 'c3'") == [(0,)]
        q = monthly_report(wh, agreements, "2026-04", now=datetime(2027, 1, 1, tzinfo=UTC))["queues"]
        assert (q["avgifter"]["offered"], q["avgifter"]["answered"], q["avgifter"]["asa_seconds"]) == (1, 1, 30)
        assert (q["kundreskontra"]["transferred_out"], q["kundreskontra"]["internal_transfers"]) == (1, 1)
        assert wh.migrate() == []  # applied once
    finally:
        wh.client.command(f"DROP DATABASE IF EXISTS `{database}`")
        wh.close()
