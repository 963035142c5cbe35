-- Loads: `availability process` writes a row when it starts (finished = 0) and another when
-- everything it read is stored (finished = 1); FINAL keeps the higher. A load left at 0 was
-- interrupted or crashed, and a report over the warehouse says so until a later finished load
-- went over the same files.
CREATE TABLE IF NOT EXISTS loads
(
    load_id     String,
    started_at  DateTime64(3, 'UTC'),
    finished_at Nullable(DateTime64(3, 'UTC')),
    files       Array(String),                   -- absolute paths, as given
    command     LowCardinality(String),
    finished    UInt8
)
ENGINE = ReplacingMergeTree(finished)
ORDER BY load_id;

-- The Deriver reloads every stored event of a touched call or thread, however old, by `key`
-- (schemas/ddl/001: the sort key starts with the day, so a key alone cannot use it). A bloom
-- filter per granule lets a lookup of a few keys skip the granules that hold none of them.
ALTER TABLE events ADD INDEX IF NOT EXISTS events_key_bloom key TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE events MATERIALIZE INDEX events_key_bloom;
