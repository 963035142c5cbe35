-- Scale (issue 14): the fact tables partitioned by month and sorted by time, so a month, a day or
-- an hour reads only its parts and granules, and interval aggregates per queue and mailbox and
-- 15 minutes for the dashboards and the report's counts.
--
-- A contact's row is keyed by (first_queued_at, call_id, seq), a case's by (opened_at, mailbox,
-- thread_id, seq): the instant that fixes its period leads the key. A re-derived contact with the
-- same first queued time replaces its row; the rare late event that moves it (an earlier
-- call.queued, contacts merged) makes the Deriver withdraw the row under the old key with a row
-- marked `deleted` under that key (stream_jobs/core/deriver.py), so FINAL never counts it twice.
-- ClickHouse has no RENAME on a cluster here (schemas/cluster.py), so each table is copied aside,
-- made again with the new key, and copied back.

-- A run stopped between a DROP and the CREATE after it resumes here: the table is made (empty) in
-- its new form if it is gone, and its rows are in the copy aside already.
CREATE TABLE IF NOT EXISTS call_contacts
(
    call_id          String,
    seq              UInt32,                     -- 1 for the call's first contact
    internal         Bool,                       -- queued again after an answer: reported apart
    queue            LowCardinality(String),     -- attributed (last) queue
    first_queued_at  DateTime64(3, 'UTC'),       -- fixes the contact's period
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
    deleted          UInt8 DEFAULT 0,            -- 1: the call no longer has this row
    derived_at       DateTime64(3, 'UTC') DEFAULT now64(3),
    derived_with     LowCardinality(String) DEFAULT '',
    -- The report's recovered abandons look for answers after a month's start: the granules
    -- whose contacts all left before it are skipped, however long ago they were first queued.
    INDEX left_at_minmax left_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(derived_at, deleted)
PARTITION BY toYYYYMM(first_queued_at)
ORDER BY (first_queued_at, call_id, seq);

CREATE TABLE IF NOT EXISTS call_contacts_by_call
(
    call_id          String,
    seq              UInt32,
    internal         Bool,
    queue            LowCardinality(String),
    first_queued_at  DateTime64(3, 'UTC'),
    outcome          LowCardinality(String),
    left_at          Nullable(DateTime64(3, 'UTC')),
    queue_open       Bool,
    wait_seconds     Nullable(Float64),
    short_abandon    Bool,
    in_service_level Bool,
    levels_met       Array(Float64),
    agent            String,
    talk_seconds     Nullable(Float64),
    transferred_from Array(LowCardinality(String)),
    caller_ref       String,
    offered_at       Nullable(DateTime64(3, 'UTC')),
    entrance         LowCardinality(String),
    ended_at         Nullable(DateTime64(3, 'UTC')),
    events           UInt32,
    deleted          UInt8 DEFAULT 0,
    derived_at       DateTime64(3, 'UTC') DEFAULT now64(3),
    derived_with     LowCardinality(String) DEFAULT ''
)
ENGINE = ReplacingMergeTree(derived_at, deleted)
ORDER BY (call_id, seq);

-- Column by column: an older warehouse's columns may stand in another order (ADD COLUMN).
INSERT INTO call_contacts_by_call
    (call_id, seq, internal, queue, first_queued_at, outcome, left_at, queue_open, wait_seconds, short_abandon,
    in_service_level, levels_met, agent, talk_seconds, transferred_from, caller_ref, offered_at, entrance, ended_at,
    events, deleted, derived_at, derived_with)
SELECT
    call_id, seq, internal, queue, first_queued_at, outcome, left_at, queue_open, wait_seconds, short_abandon,
    in_service_level, levels_met, agent, talk_seconds, transferred_from, caller_ref, offered_at, entrance, ended_at,
    events, deleted, derived_at, derived_with
FROM call_contacts FINAL;

DROP TABLE IF EXISTS call_contacts;

-- One row per contact (stream_jobs/core/calls.py), as in 006; only the key changed.
CREATE TABLE IF NOT EXISTS call_contacts
(
    call_id          String,
    seq              UInt32,                     -- 1 for the call's first contact
    internal         Bool,                       -- queued again after an answer: reported apart
    queue            LowCardinality(String),     -- attributed (last) queue
    first_queued_at  DateTime64(3, 'UTC'),       -- fixes the contact's period
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
    deleted          UInt8 DEFAULT 0,            -- 1: the call no longer has this row
    derived_at       DateTime64(3, 'UTC') DEFAULT now64(3),
    derived_with     LowCardinality(String) DEFAULT '',
    -- The report's recovered abandons look for answers after a month's start: the granules
    -- whose contacts all left before it are skipped, however long ago they were first queued.
    INDEX left_at_minmax left_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(derived_at, deleted)
PARTITION BY toYYYYMM(first_queued_at)
ORDER BY (first_queued_at, call_id, seq);

INSERT INTO call_contacts
    (call_id, seq, internal, queue, first_queued_at, outcome, left_at, queue_open, wait_seconds, short_abandon,
    in_service_level, levels_met, agent, talk_seconds, transferred_from, caller_ref, offered_at, entrance, ended_at,
    events, deleted, derived_at, derived_with)
SELECT
    call_id, seq, internal, queue, first_queued_at, outcome, left_at, queue_open, wait_seconds, short_abandon,
    in_service_level, levels_met, agent, talk_seconds, transferred_from, caller_ref, offered_at, entrance, ended_at,
    events, deleted, derived_at, derived_with
FROM call_contacts_by_call;

DROP TABLE IF EXISTS call_contacts_by_call;

CREATE TABLE IF NOT EXISTS mail_cases
(
    mailbox              LowCardinality(String),
    thread_id            String,
    seq                  UInt32,
    opened_at            DateTime64(3, 'UTC'),   -- fixes the case's period
    opened_clock         Float64,
    ended_at             Nullable(DateTime64(3, 'UTC')),
    end                  LowCardinality(String), -- replied | closed | '' (open)
    close_reason         LowCardinality(String),
    lead_seconds         Nullable(Float64),      -- business seconds to the reply
    priority             Bool,
    target_seconds       Float64,
    working_day_deadline Nullable(DateTime64(3, 'UTC')),
    messages             UInt32,
    sender_ref           String,
    deleted              UInt8 DEFAULT 0,        -- 1: the thread no longer has this row
    derived_at           DateTime64(3, 'UTC') DEFAULT now64(3),
    derived_with         LowCardinality(String) DEFAULT ''
)
ENGINE = ReplacingMergeTree(derived_at, deleted)
PARTITION BY toYYYYMM(opened_at)
ORDER BY (opened_at, mailbox, thread_id, seq);

CREATE TABLE IF NOT EXISTS mail_cases_by_thread
(
    mailbox              LowCardinality(String),
    thread_id            String,
    seq                  UInt32,
    opened_at            DateTime64(3, 'UTC'),
    opened_clock         Float64,
    ended_at             Nullable(DateTime64(3, 'UTC')),
    end                  LowCardinality(String),
    close_reason         LowCardinality(String),
    lead_seconds         Nullable(Float64),
    priority             Bool,
    target_seconds       Float64,
    working_day_deadline Nullable(DateTime64(3, 'UTC')),
    messages             UInt32,
    sender_ref           String,
    derived_at           DateTime64(3, 'UTC') DEFAULT now64(3),
    derived_with         LowCardinality(String) DEFAULT ''
)
ENGINE = ReplacingMergeTree
ORDER BY (mailbox, thread_id, seq);

INSERT INTO mail_cases_by_thread
    (mailbox, thread_id, seq, opened_at, opened_clock, ended_at, end, close_reason, lead_seconds, priority,
    target_seconds, working_day_deadline, messages, sender_ref, derived_at, derived_with)
SELECT
    mailbox, thread_id, seq, opened_at, opened_clock, ended_at, end, close_reason, lead_seconds, priority,
    target_seconds, working_day_deadline, messages, sender_ref, derived_at, derived_with
FROM mail_cases FINAL;

DROP TABLE IF EXISTS mail_cases;

-- One row per mailbox case (stream_jobs/core/mail.py), as in 003 and 006, keyed by its opening.
-- `opened_clock` is the calendar's business clock at opening, so a case's business age at any
-- time T is clock(T) - opened_clock.
CREATE TABLE IF NOT EXISTS mail_cases
(
    mailbox              LowCardinality(String),
    thread_id            String,
    seq                  UInt32,
    opened_at            DateTime64(3, 'UTC'),   -- fixes the case's period
    opened_clock         Float64,
    ended_at             Nullable(DateTime64(3, 'UTC')),
    end                  LowCardinality(String), -- replied | closed | '' (open)
    close_reason         LowCardinality(String),
    lead_seconds         Nullable(Float64),      -- business seconds to the reply
    priority             Bool,
    target_seconds       Float64,
    working_day_deadline Nullable(DateTime64(3, 'UTC')),
    messages             UInt32,
    sender_ref           String,
    deleted              UInt8 DEFAULT 0,        -- 1: the thread no longer has this row
    derived_at           DateTime64(3, 'UTC') DEFAULT now64(3),
    derived_with         LowCardinality(String) DEFAULT ''
)
ENGINE = ReplacingMergeTree(derived_at, deleted)
PARTITION BY toYYYYMM(opened_at)
ORDER BY (opened_at, mailbox, thread_id, seq);

INSERT INTO mail_cases
    (mailbox, thread_id, seq, opened_at, opened_clock, ended_at, end, close_reason, lead_seconds, priority,
     target_seconds, working_day_deadline, messages, sender_ref, derived_at, derived_with)
SELECT mailbox, thread_id, seq, opened_at, opened_clock, ended_at, end, close_reason, lead_seconds, priority,
       target_seconds, working_day_deadline, messages, sender_ref, derived_at, derived_with
FROM mail_cases_by_thread;

DROP TABLE IF EXISTS mail_cases_by_thread;

-- The measures of each queue per 15 minutes of first queued time (UTC; every time zone's local
-- hour is a whole number of them), as the facts give them: recomputed from call_contacts for
-- every interval a batch touched, old and new (stream_jobs/intervals.py). A recompute replaces
-- the row (the latest `computed_at` wins), so a batch done again, or two workers, never add twice.
CREATE TABLE IF NOT EXISTS queue_intervals
(
    interval_start     DateTime('UTC'),
    queue              LowCardinality(String),
    offered            UInt64,                   -- ordinary contacts, queue open
    answered           UInt64,
    abandoned          UInt64,
    short_abandoned    UInt64,
    callbacks          UInt64,
    flowed_out         UInt64,
    in_service_level   UInt64,
    out_of_hours       UInt64,                   -- ordinary contacts, queue closed
    internal_transfers UInt64,                   -- internal contacts, in no KPI
    levels             Array(Float64),           -- extra_service_levels thresholds ...
    levels_met         Array(UInt64),            -- ... and the offered contacts answered within each
    wait_us            Array(UInt64),            -- the answered waits (microseconds), each once ...
    wait_counts        Array(UInt64),            -- ... and how many answered contacts waited so long
    max_wait           Nullable(Float64),        -- the longest wait answered or abandoned (seconds)
    left_queues        Array(String),            -- the queues offered contacts left before answer ...
    left_counts        Array(UInt64),            -- ... and how many left each
    derived_with       Array(String),            -- the fingerprints of the agreements that derived them
    computed_at        DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYear(interval_start)
ORDER BY (interval_start, queue);

-- The same per mailbox and 15 minutes of opening: the fingerprints of the agreements that derived
-- the cases (the report's provenance reads them), the counts that do not depend on when a case is
-- judged, and those judged now (replied, in time) for queries of one's own. The report judges a
-- case at the end of its month, from mail_cases.
CREATE TABLE IF NOT EXISTS mailbox_intervals
(
    interval_start     DateTime('UTC'),
    mailbox            LowCardinality(String),
    received           UInt64,
    priority_received  UInt64,
    replied            UInt64,
    closed             UInt64,
    replied_in_time    UInt64,
    derived_with       Array(String),
    computed_at        DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYear(interval_start)
ORDER BY (interval_start, mailbox);

-- Fill the aggregates from the facts already held (the Deriver keeps them from here on): the
-- statements stream_jobs/intervals.py renders for every interval (tests/unit/test_intervals.py).
INSERT INTO queue_intervals (interval_start, queue, offered, answered, abandoned, short_abandoned, callbacks, flowed_out, in_service_level, out_of_hours, internal_transfers, max_wait, derived_with, levels, levels_met, wait_us, wait_counts, left_queues, left_counts)
SELECT interval_start, queue, offered, answered, abandoned, short_abandoned, callbacks, flowed_out, in_service_level, out_of_hours, internal_transfers, max_wait, derived_with, levels_map.1 AS levels, levels_map.2 AS levels_met, wait_map.1 AS wait_us, wait_map.2 AS wait_counts, left_map.1 AS left_queues, left_map.2 AS left_counts FROM (
    SELECT toStartOfFifteenMinutes(first_queued_at) AS interval_start, queue,
        countIf(NOT internal AND queue_open) AS offered,
        countIf(NOT internal AND queue_open AND outcome = 'answered') AS answered,
        countIf(NOT internal AND queue_open AND outcome = 'abandoned') AS abandoned,
        countIf(NOT internal AND queue_open AND short_abandon) AS short_abandoned,
        countIf(NOT internal AND queue_open AND outcome = 'callback') AS callbacks,
        countIf(NOT internal AND queue_open AND outcome = 'flowed_out') AS flowed_out,
        countIf(NOT internal AND queue_open AND in_service_level) AS in_service_level,
        countIf(NOT internal AND NOT queue_open) AS out_of_hours,
        countIf(internal) AS internal_transfers,
        sumMapIf(levels_met, arrayMap(x -> toUInt64(1), levels_met), NOT internal AND queue_open) AS levels_map,
        sumMapIf([toUInt64(round(assumeNotNull(wait_seconds) * 1000000))], [toUInt64(1)], NOT internal AND queue_open AND outcome = 'answered') AS wait_map,
        maxIf(wait_seconds, NOT internal AND queue_open AND outcome IN ('answered', 'abandoned')) AS max_wait,
        sumMapIf(arrayMap(q -> toString(q), transferred_from), arrayMap(x -> toUInt64(1), transferred_from), NOT internal AND queue_open) AS left_map,
        arraySort(groupUniqArray(toString(derived_with))) AS derived_with
    FROM call_contacts FINAL
    WHERE true
    GROUP BY interval_start, queue
);

INSERT INTO mailbox_intervals (interval_start, mailbox, received, priority_received, replied, closed, replied_in_time, derived_with)
SELECT interval_start, mailbox, received, priority_received, replied, closed, replied_in_time, derived_with FROM (
    SELECT toStartOfFifteenMinutes(opened_at) AS interval_start, mailbox,
        countIf(true) AS received,
        countIf(priority) AS priority_received,
        countIf(end = 'replied') AS replied,
        countIf(end = 'closed') AS closed,
        countIf(end = 'replied' AND lead_seconds <= target_seconds) AS replied_in_time,
        arraySort(groupUniqArray(toString(derived_with))) AS derived_with
    FROM mail_cases FINAL
    WHERE true
    GROUP BY interval_start, mailbox
);
