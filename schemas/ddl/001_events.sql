-- Canonical events after the ingest boundary (no raw personal data), one row per event.
-- ReplacingMergeTree on (source, id) within the sort key: replays and duplicates collapse.
-- `payload` is the canonical event JSON that the derivations fold again when needed.
CREATE TABLE IF NOT EXISTS events
(
    kind        LowCardinality(String),          -- call | agent | mail
    type        LowCardinality(String),
    source      LowCardinality(String),
    id          String,
    time        DateTime64(3, 'UTC'),
    key         String,                          -- call id, agent, or mailbox/thread_id
    payload     String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (kind, toDate(time), key, source, id);
