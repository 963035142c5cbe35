-- Source health (issue 12): every rejected input, by source and reason, so that an adapter that
-- starts rejecting is seen (`availability sources`, beside what `events` holds per source). One
-- row per rejected input, keyed by where it was read (a file's line, a topic's offset): a
-- batch processed again, or fetched again after a warehouse outage, counts nothing twice.
-- The raw input is not here (it may hold personal data): it stays in the rejects file or on the
-- dead-letter topic.
CREATE TABLE IF NOT EXISTS source_rejects
(
    source      LowCardinality(String),          -- the event's `source`, '' when it cannot be read
    origin      String,                          -- FILE:LINE, or topic/partition/offset
    reason      String,
    rejected_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(rejected_at)
ORDER BY (source, origin);
