-- Contract v2 (spec revised 2026-11-28).
--
-- One row per contact (stream_jobs/core/calls.py): a call re-queued after a callback or a
-- flow-out holds several ordinary contacts, and an internal transfer is a contact of its own
-- (`internal`, in no KPI). Re-derived whenever an event of the call arrives; the latest row of a
-- (call_id, seq) wins (query with FINAL). A late event can merge two contacts into one (events at
-- one instant completed by a later batch): the Deriver then writes the contact it no longer has
-- as `deleted`, which FINAL leaves out.
CREATE TABLE IF NOT EXISTS call_contacts
(
    call_id          String,
    seq              UInt32,                     -- 1 for the call's first contact
    internal         Bool,                       -- queued again after an answer: reported apart
    queue            LowCardinality(String),     -- attributed (last) queue
    first_queued_at  DateTime64(3, 'UTC'),
    outcome          LowCardinality(String),     -- answered | abandoned | callback | flowed_out | waiting
    left_at          Nullable(DateTime64(3, 'UTC')),
    queue_open       Bool,                       -- false: out_of_hours (unmet demand)
    wait_seconds     Nullable(Float64),
    short_abandon    Bool,
    in_service_level Bool,
    levels_met       Array(Float64),             -- the queue's extra_service_levels answered within
    agent            String,
    talk_seconds     Nullable(Float64),
    transferred_from Array(LowCardinality(String)),  -- each queue left before answer, once
    caller_ref       String,                     -- keyed hash, never the number; '' unknown
    offered_at       Nullable(DateTime64(3, 'UTC')),
    entrance         LowCardinality(String),
    ended_at         Nullable(DateTime64(3, 'UTC')),
    events           UInt32,
    deleted          UInt8 DEFAULT 0,            -- 1: the call no longer has this contact
    derived_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(derived_at, deleted)
ORDER BY (call_id, seq);

-- A warehouse written by an earlier version keeps its calls: each row of call_facts becomes its
-- contact (seq 1) and its internal transfers (seq 2, 3, ...), as the v1 rules derived them. A
-- call touched again is re-derived under the v2 rules.
INSERT INTO call_contacts
    (call_id, seq, internal, queue, first_queued_at, outcome, left_at, queue_open, wait_seconds, short_abandon,
     in_service_level, agent, talk_seconds, transferred_from, caller_ref, offered_at, entrance, ended_at, events)
SELECT call_id, 1, false, queue, assumeNotNull(first_queued_at), outcome,
       if(wait_seconds IS NULL, NULL, addMilliseconds(assumeNotNull(first_queued_at), toInt64(round(assumeNotNull(wait_seconds) * 1000)))),
       queue_open, wait_seconds, short_abandon, in_service_level, agent, talk_seconds, arrayDistinct(transferred_from),
       caller_ref, offered_at, entrance, ended_at, events
FROM call_facts FINAL
WHERE queue != '' AND first_queued_at IS NOT NULL;

INSERT INTO call_contacts
    (call_id, seq, internal, queue, first_queued_at, outcome, left_at, queue_open, wait_seconds, short_abandon,
     in_service_level, agent, caller_ref, offered_at, entrance, ended_at, events)
SELECT call_id, 1 + n, true, iq, iat, io,
       if(iw IS NULL, NULL, addMilliseconds(iat, toInt64(round(assumeNotNull(iw) * 1000)))),
       queue_open, iw, false, false, '', caller_ref, offered_at, entrance, ended_at, events
FROM call_facts FINAL
ARRAY JOIN internal_queue AS iq, internal_queued_at AS iat, internal_outcome AS io, internal_wait AS iw,
           arrayEnumerate(internal_queue) AS n;

DROP TABLE IF EXISTS call_facts;

-- Conflicting duplicates (spec/events.md): same source and id, different content. The product
-- keeps one (stream_jobs/core/ordering.py `preferred`) and records each other version here once,
-- however often it is met again, so the conflicts can be counted and seen.
CREATE TABLE IF NOT EXISTS event_conflicts
(
    source       LowCardinality(String),
    id           String,
    type         LowCardinality(String),
    time         DateTime64(3, 'UTC'),           -- of the version kept
    other_digest String,                         -- fingerprint of the version not kept
    other        String,                         -- that version's canonical JSON (after ingest)
    detected_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (source, id, other_digest);

-- The KKiK yardstick (answered within one working day): the end (24:00, local) of the first
-- working day after the day the case opened, decided when the case is derived. Cases derived by
-- an earlier version have none (NULL) until they are derived again.
ALTER TABLE mail_cases ADD COLUMN IF NOT EXISTS working_day_deadline Nullable(DateTime64(3, 'UTC')) AFTER target_seconds;
