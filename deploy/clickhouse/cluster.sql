-- The warehouse's tables for the ClickHouse cluster `availability` (remote_servers): each table t is a
-- replicated t_local on every server and a Distributed t over them. Generated from
-- schemas/ddl/*.sql by schemas/cluster.py (`availability generate`); do not edit.
-- Apply with the database selected: deploy/clickhouse/README.md.

-- schema_migrations (stream_jobs/warehouse.py, Warehouse.migrate)
CREATE TABLE IF NOT EXISTS schema_migrations_local ON CLUSTER availability
(name String, applied_at DateTime DEFAULT now())
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/schema_migrations_local', '{replica}')
ORDER BY name;
CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER availability AS schema_migrations_local
ENGINE = Distributed('availability', currentDatabase(), schema_migrations_local, rand());

-- schemas/ddl/001_events.sql
CREATE TABLE IF NOT EXISTS events_local ON CLUSTER availability
(
    kind        LowCardinality(String),
    type        LowCardinality(String),
    source      LowCardinality(String),
    id          String,
    time        DateTime64(3, 'UTC'),
    key         String,
    payload     String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (kind, toDate(time), key, source, id);
CREATE TABLE IF NOT EXISTS events ON CLUSTER availability AS events_local
ENGINE = Distributed('availability', currentDatabase(), events_local, cityHash64(key));
INSERT INTO schema_migrations (name) VALUES ('001_events.sql');

-- schemas/ddl/002_call_facts.sql
CREATE TABLE IF NOT EXISTS call_facts_local ON CLUSTER availability
(
    call_id          String,
    offered_at       Nullable(DateTime64(3, 'UTC')),
    entrance         LowCardinality(String),
    caller_ref       String,
    queue            LowCardinality(String),
    first_queued_at  Nullable(DateTime64(3, 'UTC')),
    outcome          LowCardinality(String),
    queue_open       Bool,
    wait_seconds     Nullable(Float64),
    short_abandon    Bool,
    in_service_level Bool,
    agent            String,
    talk_seconds     Nullable(Float64),
    transferred_from Array(LowCardinality(String)),
    ended_at         Nullable(DateTime64(3, 'UTC')),
    internal_queue     Array(LowCardinality(String)),
    internal_queued_at Array(DateTime64(3, 'UTC')),
    internal_outcome   Array(LowCardinality(String)),
    internal_wait      Array(Nullable(Float64)),
    events           UInt32,
    derived_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/call_facts_local', '{replica}')
ORDER BY call_id;
CREATE TABLE IF NOT EXISTS call_facts ON CLUSTER availability AS call_facts_local
ENGINE = Distributed('availability', currentDatabase(), call_facts_local, cityHash64(call_id));
INSERT INTO schema_migrations (name) VALUES ('002_call_facts.sql');

-- schemas/ddl/003_mail_cases.sql
CREATE TABLE IF NOT EXISTS mail_cases_local ON CLUSTER availability
(
    mailbox        LowCardinality(String),
    thread_id      String,
    seq            UInt32,
    opened_at      DateTime64(3, 'UTC'),
    opened_clock   Float64,
    ended_at       Nullable(DateTime64(3, 'UTC')),
    end            LowCardinality(String),
    close_reason   LowCardinality(String),
    lead_seconds   Nullable(Float64),
    priority       Bool,
    target_seconds Float64,
    messages       UInt32,
    sender_ref     String,
    derived_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/mail_cases_local', '{replica}')
ORDER BY (mailbox, thread_id, seq);
CREATE TABLE IF NOT EXISTS mail_cases ON CLUSTER availability AS mail_cases_local
ENGINE = Distributed('availability', currentDatabase(), mail_cases_local, cityHash64(mailbox, thread_id));
INSERT INTO schema_migrations (name) VALUES ('003_mail_cases.sql');

-- schemas/ddl/004_loads_and_key_index.sql
CREATE TABLE IF NOT EXISTS loads_local ON CLUSTER availability
(
    load_id     String,
    started_at  DateTime64(3, 'UTC'),
    finished_at Nullable(DateTime64(3, 'UTC')),
    files       Array(String),
    command     LowCardinality(String),
    finished    UInt8
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/loads_local', '{replica}', finished)
ORDER BY load_id;
CREATE TABLE IF NOT EXISTS loads ON CLUSTER availability AS loads_local
ENGINE = Distributed('availability', currentDatabase(), loads_local, cityHash64(load_id));
ALTER TABLE events_local ON CLUSTER availability ADD INDEX IF NOT EXISTS events_key_bloom key TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE events_local ON CLUSTER availability MATERIALIZE INDEX events_key_bloom;
INSERT INTO schema_migrations (name) VALUES ('004_loads_and_key_index.sql');

-- schemas/ddl/005_stream_positions.sql
CREATE TABLE IF NOT EXISTS stream_positions_local ON CLUSTER availability
(
    topic       String,
    partition   UInt32,
    next_offset UInt64,
    stored_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/stream_positions_local', '{replica}', next_offset)
ORDER BY (topic, partition);
CREATE TABLE IF NOT EXISTS stream_positions ON CLUSTER availability AS stream_positions_local
ENGINE = Distributed('availability', currentDatabase(), stream_positions_local, cityHash64(topic, partition));
INSERT INTO schema_migrations (name) VALUES ('005_stream_positions.sql');

-- schemas/ddl/006_contract_v2.sql
CREATE TABLE IF NOT EXISTS call_contacts_local ON CLUSTER availability
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
    derived_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/call_contacts_local', '{replica}', derived_at, deleted)
ORDER BY (call_id, seq);
CREATE TABLE IF NOT EXISTS call_contacts ON CLUSTER availability AS call_contacts_local
ENGINE = Distributed('availability', currentDatabase(), call_contacts_local, cityHash64(call_id));
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
DROP TABLE IF EXISTS call_facts ON CLUSTER availability SYNC;
DROP TABLE IF EXISTS call_facts_local ON CLUSTER availability SYNC;
CREATE TABLE IF NOT EXISTS event_conflicts_local ON CLUSTER availability
(
    source       LowCardinality(String),
    id           String,
    type         LowCardinality(String),
    time         DateTime64(3, 'UTC'),
    other_digest String,
    other        String,
    detected_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/event_conflicts_local', '{replica}')
ORDER BY (source, id, other_digest);
CREATE TABLE IF NOT EXISTS event_conflicts ON CLUSTER availability AS event_conflicts_local
ENGINE = Distributed('availability', currentDatabase(), event_conflicts_local, cityHash64(source, id, other_digest));
ALTER TABLE mail_cases_local ON CLUSTER availability ADD COLUMN IF NOT EXISTS working_day_deadline Nullable(DateTime64(3, 'UTC')) AFTER target_seconds;
ALTER TABLE mail_cases ON CLUSTER availability ADD COLUMN IF NOT EXISTS working_day_deadline Nullable(DateTime64(3, 'UTC')) AFTER target_seconds;
INSERT INTO schema_migrations (name) VALUES ('006_contract_v2.sql');

-- schemas/ddl/007_derived_with.sql
ALTER TABLE call_contacts_local ON CLUSTER availability ADD COLUMN IF NOT EXISTS derived_with LowCardinality(String) DEFAULT '';
ALTER TABLE call_contacts ON CLUSTER availability ADD COLUMN IF NOT EXISTS derived_with LowCardinality(String) DEFAULT '';
ALTER TABLE mail_cases_local ON CLUSTER availability ADD COLUMN IF NOT EXISTS derived_with LowCardinality(String) DEFAULT '';
ALTER TABLE mail_cases ON CLUSTER availability ADD COLUMN IF NOT EXISTS derived_with LowCardinality(String) DEFAULT '';
CREATE TABLE IF NOT EXISTS agreements_seen_local ON CLUSTER availability
(
    fingerprint String,
    inputs      String,
    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/agreements_seen_local', '{replica}', recorded_at)
ORDER BY fingerprint;
CREATE TABLE IF NOT EXISTS agreements_seen ON CLUSTER availability AS agreements_seen_local
ENGINE = Distributed('availability', currentDatabase(), agreements_seen_local, cityHash64(fingerprint));
INSERT INTO schema_migrations (name) VALUES ('007_derived_with.sql');

-- schemas/ddl/008_source_rejects.sql
CREATE TABLE IF NOT EXISTS source_rejects_local ON CLUSTER availability
(
    source      LowCardinality(String),
    origin      String,
    reason      String,
    rejected_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/source_rejects_local', '{replica}', rejected_at)
ORDER BY (source, origin);
CREATE TABLE IF NOT EXISTS source_rejects ON CLUSTER availability AS source_rejects_local
ENGINE = Distributed('availability', currentDatabase(), source_rejects_local, cityHash64(source, origin));
INSERT INTO schema_migrations (name) VALUES ('008_source_rejects.sql');

-- schemas/ddl/009_facts_by_time.sql
CREATE TABLE IF NOT EXISTS call_contacts_local ON CLUSTER availability
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
    derived_with     LowCardinality(String) DEFAULT '',


    INDEX left_at_minmax left_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/call_contacts_local', '{replica}', derived_at, deleted)
PARTITION BY toYYYYMM(first_queued_at)
ORDER BY (first_queued_at, call_id, seq);
CREATE TABLE IF NOT EXISTS call_contacts ON CLUSTER availability AS call_contacts_local
ENGINE = Distributed('availability', currentDatabase(), call_contacts_local, cityHash64(call_id));
CREATE TABLE IF NOT EXISTS call_contacts_by_call_local ON CLUSTER availability
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/call_contacts_by_call_local', '{replica}', derived_at, deleted)
ORDER BY (call_id, seq);
CREATE TABLE IF NOT EXISTS call_contacts_by_call ON CLUSTER availability AS call_contacts_by_call_local
ENGINE = Distributed('availability', currentDatabase(), call_contacts_by_call_local, cityHash64(call_id));
INSERT INTO call_contacts_by_call
    (call_id, seq, internal, queue, first_queued_at, outcome, left_at, queue_open, wait_seconds, short_abandon,
    in_service_level, levels_met, agent, talk_seconds, transferred_from, caller_ref, offered_at, entrance, ended_at,
    events, deleted, derived_at, derived_with)
SELECT
    call_id, seq, internal, queue, first_queued_at, outcome, left_at, queue_open, wait_seconds, short_abandon,
    in_service_level, levels_met, agent, talk_seconds, transferred_from, caller_ref, offered_at, entrance, ended_at,
    events, deleted, derived_at, derived_with
FROM call_contacts FINAL;
DROP TABLE IF EXISTS call_contacts ON CLUSTER availability SYNC;
DROP TABLE IF EXISTS call_contacts_local ON CLUSTER availability SYNC;
CREATE TABLE IF NOT EXISTS call_contacts_local ON CLUSTER availability
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
    derived_with     LowCardinality(String) DEFAULT '',


    INDEX left_at_minmax left_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/call_contacts_local', '{replica}', derived_at, deleted)
PARTITION BY toYYYYMM(first_queued_at)
ORDER BY (first_queued_at, call_id, seq);
CREATE TABLE IF NOT EXISTS call_contacts ON CLUSTER availability AS call_contacts_local
ENGINE = Distributed('availability', currentDatabase(), call_contacts_local, cityHash64(call_id));
INSERT INTO call_contacts
    (call_id, seq, internal, queue, first_queued_at, outcome, left_at, queue_open, wait_seconds, short_abandon,
    in_service_level, levels_met, agent, talk_seconds, transferred_from, caller_ref, offered_at, entrance, ended_at,
    events, deleted, derived_at, derived_with)
SELECT
    call_id, seq, internal, queue, first_queued_at, outcome, left_at, queue_open, wait_seconds, short_abandon,
    in_service_level, levels_met, agent, talk_seconds, transferred_from, caller_ref, offered_at, entrance, ended_at,
    events, deleted, derived_at, derived_with
FROM call_contacts_by_call;
DROP TABLE IF EXISTS call_contacts_by_call ON CLUSTER availability SYNC;
DROP TABLE IF EXISTS call_contacts_by_call_local ON CLUSTER availability SYNC;
CREATE TABLE IF NOT EXISTS mail_cases_local ON CLUSTER availability
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
    deleted              UInt8 DEFAULT 0,
    derived_at           DateTime64(3, 'UTC') DEFAULT now64(3),
    derived_with         LowCardinality(String) DEFAULT ''
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/mail_cases_local', '{replica}', derived_at, deleted)
PARTITION BY toYYYYMM(opened_at)
ORDER BY (opened_at, mailbox, thread_id, seq);
CREATE TABLE IF NOT EXISTS mail_cases ON CLUSTER availability AS mail_cases_local
ENGINE = Distributed('availability', currentDatabase(), mail_cases_local, cityHash64(mailbox, thread_id));
CREATE TABLE IF NOT EXISTS mail_cases_by_thread_local ON CLUSTER availability
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/mail_cases_by_thread_local', '{replica}')
ORDER BY (mailbox, thread_id, seq);
CREATE TABLE IF NOT EXISTS mail_cases_by_thread ON CLUSTER availability AS mail_cases_by_thread_local
ENGINE = Distributed('availability', currentDatabase(), mail_cases_by_thread_local, cityHash64(mailbox, thread_id));
INSERT INTO mail_cases_by_thread
    (mailbox, thread_id, seq, opened_at, opened_clock, ended_at, end, close_reason, lead_seconds, priority,
    target_seconds, working_day_deadline, messages, sender_ref, derived_at, derived_with)
SELECT
    mailbox, thread_id, seq, opened_at, opened_clock, ended_at, end, close_reason, lead_seconds, priority,
    target_seconds, working_day_deadline, messages, sender_ref, derived_at, derived_with
FROM mail_cases FINAL;
DROP TABLE IF EXISTS mail_cases ON CLUSTER availability SYNC;
DROP TABLE IF EXISTS mail_cases_local ON CLUSTER availability SYNC;
CREATE TABLE IF NOT EXISTS mail_cases_local ON CLUSTER availability
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
    deleted              UInt8 DEFAULT 0,
    derived_at           DateTime64(3, 'UTC') DEFAULT now64(3),
    derived_with         LowCardinality(String) DEFAULT ''
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/mail_cases_local', '{replica}', derived_at, deleted)
PARTITION BY toYYYYMM(opened_at)
ORDER BY (opened_at, mailbox, thread_id, seq);
CREATE TABLE IF NOT EXISTS mail_cases ON CLUSTER availability AS mail_cases_local
ENGINE = Distributed('availability', currentDatabase(), mail_cases_local, cityHash64(mailbox, thread_id));
INSERT INTO mail_cases
    (mailbox, thread_id, seq, opened_at, opened_clock, ended_at, end, close_reason, lead_seconds, priority,
     target_seconds, working_day_deadline, messages, sender_ref, derived_at, derived_with)
SELECT mailbox, thread_id, seq, opened_at, opened_clock, ended_at, end, close_reason, lead_seconds, priority,
       target_seconds, working_day_deadline, messages, sender_ref, derived_at, derived_with
FROM mail_cases_by_thread;
DROP TABLE IF EXISTS mail_cases_by_thread ON CLUSTER availability SYNC;
DROP TABLE IF EXISTS mail_cases_by_thread_local ON CLUSTER availability SYNC;
CREATE TABLE IF NOT EXISTS queue_intervals_local ON CLUSTER availability
(
    interval_start     DateTime('UTC'),
    queue              LowCardinality(String),
    offered            UInt64,
    answered           UInt64,
    abandoned          UInt64,
    short_abandoned    UInt64,
    callbacks          UInt64,
    flowed_out         UInt64,
    in_service_level   UInt64,
    out_of_hours       UInt64,
    internal_transfers UInt64,
    levels             Array(Float64),
    levels_met         Array(UInt64),
    wait_us            Array(UInt64),
    wait_counts        Array(UInt64),
    max_wait           Nullable(Float64),
    left_queues        Array(String),
    left_counts        Array(UInt64),
    derived_with       Array(String),
    computed_at        DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/queue_intervals_local', '{replica}', computed_at)
PARTITION BY toYear(interval_start)
ORDER BY (interval_start, queue);
CREATE TABLE IF NOT EXISTS queue_intervals ON CLUSTER availability AS queue_intervals_local
ENGINE = Distributed('availability', currentDatabase(), queue_intervals_local, cityHash64(queue, interval_start));
CREATE TABLE IF NOT EXISTS mailbox_intervals_local ON CLUSTER availability
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/mailbox_intervals_local', '{replica}', computed_at)
PARTITION BY toYear(interval_start)
ORDER BY (interval_start, mailbox);
CREATE TABLE IF NOT EXISTS mailbox_intervals ON CLUSTER availability AS mailbox_intervals_local
ENGINE = Distributed('availability', currentDatabase(), mailbox_intervals_local, cityHash64(mailbox, interval_start));
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
INSERT INTO schema_migrations (name) VALUES ('009_facts_by_time.sql');
