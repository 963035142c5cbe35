-- The stream worker's positions: per Kafka topic and partition, the offset after the last
-- message whose batch this warehouse holds (stored, or kept as a dead letter). Written after
-- each batch, before its offsets are committed, so a warehouse always holds at least what the
-- consumer group committed; a worker started on a warehouse that lacks it (a fresh or restored
-- warehouse behind an old group) sees the gap and refuses to run (`stream --from-beginning`).
CREATE TABLE IF NOT EXISTS stream_positions
(
    topic       String,                          -- with the environment's prefix
    partition   UInt32,
    next_offset UInt64,
    stored_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(next_offset)
ORDER BY (topic, partition);
