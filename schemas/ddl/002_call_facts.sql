-- One row per call: its contact as the contact state machine derived it (stream_jobs/core/calls.py).
-- Re-derived whenever an event of the call arrives; the last insert wins (query with FINAL).
CREATE TABLE IF NOT EXISTS call_facts
(
    call_id          String,
    offered_at       Nullable(DateTime64(3, 'UTC')),
    entrance         LowCardinality(String),
    caller_ref       String,                     -- keyed hash, never the number
    queue            LowCardinality(String),     -- attributed (last) queue; '' if never queued
    first_queued_at  Nullable(DateTime64(3, 'UTC')),
    outcome          LowCardinality(String),     -- answered | abandoned | callback | waiting | ''
    queue_open       Bool,                       -- false: out_of_hours (unmet demand)
    wait_seconds     Nullable(Float64),
    short_abandon    Bool,
    in_service_level Bool,
    agent            String,
    talk_seconds     Nullable(Float64),
    transferred_from Array(LowCardinality(String)),
    ended_at         Nullable(DateTime64(3, 'UTC')),
    internal_queue     Array(LowCardinality(String)),   -- internal transfers, reported apart
    internal_queued_at Array(DateTime64(3, 'UTC')),
    internal_outcome   Array(LowCardinality(String)),
    internal_wait      Array(Nullable(Float64)),
    events           UInt32,
    derived_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY call_id;
